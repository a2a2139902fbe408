// Rank step of the pipeline: among feasible workers, which is best?
// Scores are in [0, 1], higher is better. The fit score is Nomad's
// (scheduler/rank.go ScoreFitBinPack / ScoreFitSpread): 10^free% per resource
// after placement, so a resource close to full dominates.
import type { WorkerRec } from './pools.js';
import type { QueuedTask } from './queue-items.js';
import type { Resources, Strategy } from './types.js';

function freeShare(capacity: number, usedAfter: number): number {
  if (capacity <= 0) return 0;
  const free = 1 - usedAfter / capacity;
  return free < 0 ? 0 : free > 1 ? 1 : free;
}

/** scoreFit: binpack prefers the worker left fullest, spread the one left emptiest. */
export function scoreFit(strategy: Strategy, capacity: Resources, used: Resources, request: Resources): number {
  const total =
    10 ** freeShare(capacity.millicpu, used.millicpu + request.millicpu) +
    10 ** freeShare(capacity.memoryBytes, used.memoryBytes + request.memoryBytes);
  // total is in [2, 20]: 2 when both resources end full, 20 when both stay empty.
  return strategy === 'binpack' ? (20 - total) / 18 : (total - 2) / 18;
}

/**
 * liveLoad: pressure from the worker's own stats in [0, 1], the mean of
 * load1 per core and the share of memory in use. Unknown stats count as idle.
 */
export function liveLoad(capacity: Resources, load1: number | undefined, memoryFreeBytes: number | undefined): number {
  const cores = capacity.millicpu / 1000;
  const cpu = load1 === undefined || cores <= 0 ? 0 : Math.min(1, Math.max(0, load1 / cores));
  const mem =
    memoryFreeBytes === undefined || capacity.memoryBytes <= 0 ? 0 : Math.min(1, Math.max(0, 1 - memoryFreeBytes / capacity.memoryBytes));
  return (cpu + mem) / 2;
}

/** scoreWorker combines the fit with live load: fit - weight × pressure. */
export function scoreWorker(
  strategy: Strategy,
  capacity: Resources,
  used: Resources,
  request: Resources,
  load1: number | undefined,
  memoryFreeBytes: number | undefined,
  liveLoadWeight: number,
): number {
  const fit = scoreFit(strategy, capacity, used, request);
  return liveLoadWeight === 0 ? fit : fit - liveLoadWeight * liveLoad(capacity, load1, memoryFreeBytes);
}

/**
 * bestWorker: the best-scoring usable worker among the first `candidates` with room for the
 * task, walking the free-resources index from the fullest (binpack) or the emptiest (spread).
 */
export function bestWorker(
  t: QueuedTask,
  excluded: ReadonlySet<string> | undefined,
  candidates: number,
  liveLoadWeight: number,
  usable: (w: WorkerRec, t: QueuedTask, ex: ReadonlySet<string> | undefined) => boolean,
): WorkerRec | undefined {
  const index = t.cls.pool.free;
  const cpu = t.req.millicpu;
  const mem = t.req.memoryBytes;
  const spread = t.strategy === 'spread';
  let best: WorkerRec | undefined;
  let bestScore = -Infinity;
  let seen = 0;
  let n = spread ? index.descending(mem, cpu) : index.ascending(mem, cpu);
  while (n !== null) {
    const w = n.item;
    if (usable(w, t, excluded)) {
      const s = scoreWorker(t.strategy, w.capacity, w.used, t.req, w.load1, w.memoryFreeBytes, liveLoadWeight);
      if (s > bestScore) {
        best = w;
        bestScore = s;
      }
      if (++seen >= candidates) break;
    }
    n = spread ? index.descending(mem, cpu, n) : index.ascending(mem, cpu, n);
  }
  return best;
}
