// Placement failure summaries, like Nomad's "Placement Failures" in
// `nomad job status`: how many workers fit, and why the others did not.
import type { PlacementFailure, RejectReason } from './types.js';

function filterRank(reason: RejectReason): number {
  if (reason === 'disconnected') return 0;
  if (reason === 'draining') return 1;
  if (reason === 'excluded') return 2;
  if (reason.startsWith('missing label ')) return 3;
  if (reason === 'insufficient cpu') return 4;
  if (reason === 'insufficient memory') return 5;
  return 6;
}

/** sortRejections: most workers first, then filter order, then reason text. */
export function sortRejections(counts: ReadonlyMap<RejectReason, number>): PlacementFailure['rejections'] {
  return [...counts]
    .map(([reason, workers]) => ({ reason, workers }))
    .sort((a, b) => b.workers - a.workers || filterRank(a.reason) - filterRank(b.reason) || (a.reason < b.reason ? -1 : a.reason > b.reason ? 1 : 0));
}

/** formatPlacementFailure: "0/3 workers fit: 2 insufficient memory, 1 missing label gpu=true". */
export function formatPlacementFailure(f: PlacementFailure): string {
  let s = `${f.fit}/${f.workers} workers fit`;
  if (f.rejections.length > 0) s += `: ${f.rejections.map((r) => `${r.workers} ${r.reason}`).join(', ')}`;
  // Said when it tells more than the counts: not when every worker is merely offline or draining.
  const onlyAway = f.rejections.length > 0 && f.rejections.every((r) => r.reason === 'disconnected' || r.reason === 'draining');
  if (f.unplaceable === 'no-fit' && !onlyAway) s += '; no connected worker could ever fit it';
  if (f.unplaceable === 'excluded') s += '; every worker that could run it refused it';
  if (f.reservedWorkerId !== undefined) s += `; worker ${f.reservedWorkerId} is reserved for it`;
  return s;
}
