// Placement failure summaries, like Nomad's "Placement Failures" in
// `nomad job status`: how many workers fit, and why the others did not.
import { firstRejection } from './feasibility.js';
import { precedes } from './order.js';
import type { WorkerRec } from './pools.js';
import type { QueuedTask } from './queue-items.js';
import type { PlacementFailure, RejectReason, Unplaceable } from './types.js';

function filterRank(reason: RejectReason): number {
  if (reason === 'disconnected') return 0;
  if (reason === 'draining') return 1;
  if (reason === 'excluded') return 2;
  if (reason.startsWith('missing label ') || reason.startsWith('user ')) return 3;
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

/**
 * explainQueued says why a queued task is not placed: each worker's first failing filter
 * (scanning the fleet, so only on request), counted by reason.
 */
export function explainQueued(
  t: QueuedTask,
  workers: ReadonlyMap<string, WorkerRec>,
  excluded: ReadonlySet<string> | undefined,
  unplaceable: Unplaceable,
  groupFull: boolean,
): PlacementFailure {
  const needs = { resources: t.req, constraints: t.constraints };
  const counts = new Map<RejectReason, number>();
  let fit = 0;
  for (const w of workers.values()) {
    const holder = w.reservedBy;
    const reservedForEarlier = holder !== undefined && holder !== t && !precedes(t, holder);
    const reason = firstRejection(w, needs, excluded?.has(w.id) ?? false, reservedForEarlier);
    if (reason === undefined) fit++;
    else counts.set(reason, (counts.get(reason) ?? 0) + 1);
  }
  const failure: PlacementFailure = { taskId: t.id, workers: workers.size, fit, rejections: sortRejections(counts), unplaceable };
  if (t.reserved !== undefined) failure.reservedWorkerId = t.reserved.id;
  if (groupFull && t.group !== undefined) failure.groupLimit = { live: t.group.live.size, limit: t.group.limit };
  return failure;
}
