// Reservations (see scheduler.ts): a blocked task at the head of the queue holds back the
// worker closest to fitting it, and later tasks may not use that worker, so backfill cannot
// starve the head. The records live on the tasks and workers (QueuedTask.reserved,
// WorkerRec.reservedBy, TaskClass.reservedTask); these functions keep the three in step.
import { holds, missingLabel } from './feasibility.js';
import { precedes } from './order.js';
import { eligible, type WorkerRec } from './pools.js';
import type { QueuedTask } from './queue-items.js';
import type { Resources, Unplaceable } from './types.js';

export type ReservationResult = 'held' | 'contended' | 'unplaceable';

/** How far a worker is from fitting req: the missing share of each resource, summed. */
function shortfall(w: WorkerRec, req: Resources): number {
  const cpu = req.millicpu - (w.capacity.millicpu - w.used.millicpu);
  const mem = req.memoryBytes - (w.capacity.memoryBytes - w.used.memoryBytes);
  return (cpu > 0 ? cpu / Math.max(1, req.millicpu) : 0) + (mem > 0 ? mem / Math.max(1, req.memoryBytes) : 0);
}

/** The reservation functions over the scheduler's exclusions; candidates bounds a search. */
export function createReservations(exclusions: ReadonlyMap<string, ReadonlySet<string>>, candidates: number) {
  function reserve(t: QueuedTask, w: WorkerRec): void {
    if (w.reservedBy !== undefined) unreserve(w.reservedBy);
    if (t.cls.reservedTask !== undefined) unreserve(t.cls.reservedTask);
    t.reserved = w;
    w.reservedBy = t;
    t.cls.reservedTask = t;
  }

  function unreserve(t: QueuedTask): void {
    const w = t.reserved;
    if (w === undefined) return;
    w.reservedBy = undefined;
    t.reserved = undefined;
    if (t.cls.reservedTask === t) t.cls.reservedTask = undefined;
  }

  const excludedFrom = (t: QueuedTask, w: WorkerRec): boolean => exclusions.get(t.id)?.has(w.id) ?? false;

  /** Drops a reservation the worker can no longer honour (gone, draining, resized, relabelled). */
  function checkReservation(w: WorkerRec): void {
    const t = w.reservedBy;
    if (t === undefined) return;
    const ok = eligible(w) && missingLabel(w.labels, t.constraints) === undefined && holds(w.capacity, t.req) && !excludedFrom(t, w);
    if (!ok) unreserve(t);
  }

  /** usable: not excluded, and not reserved for a task that goes before t. */
  function usable(w: WorkerRec, t: QueuedTask, ex: ReadonlySet<string> | undefined): boolean {
    if (ex !== undefined && ex.has(w.id)) return false;
    const holder = w.reservedBy;
    return holder === undefined || holder === t || precedes(t, holder);
  }


  /**
   * ensureReservation holds back, for a blocked task, the worker closest to
   * fitting it among the smallest that could hold it when empty.
   */
  function ensureReservation(t: QueuedTask): ReservationResult {
    if (t.reserved !== undefined) return 'held';
    const index = t.cls.pool.cap;
    const ex = exclusions.get(t.id);
    let best: WorkerRec | undefined;
    let bestShort = Infinity;
    let capable = false;
    let seen = 0;
    for (let n = index.ascending(t.req.memoryBytes, t.req.millicpu); n !== null; n = index.ascending(t.req.memoryBytes, t.req.millicpu, n)) {
      const w = n.item;
      if (ex !== undefined && ex.has(w.id)) continue;
      capable = true;
      if (w.reservedBy !== undefined && !precedes(t, w.reservedBy)) continue;
      const s = shortfall(w, t.req);
      if (s < bestShort) {
        best = w;
        bestShort = s;
      }
      if (++seen >= candidates) break;
    }
    if (best !== undefined) {
      reserve(t, best);
      return 'held';
    }
    return capable ? 'contended' : 'unplaceable';
  }

  function unplaceableFor(t: QueuedTask): Unplaceable {
    const index = t.cls.pool.cap;
    const ex = exclusions.get(t.id);
    let capable = false;
    for (let n = index.ascending(t.req.memoryBytes, t.req.millicpu); n !== null; n = index.ascending(t.req.memoryBytes, t.req.millicpu, n)) {
      if (ex === undefined || !ex.has(n.item.id)) return false;
      capable = true;
    }
    return capable ? 'excluded' : 'no-fit';
  }

  return { unreserve, checkReservation, usable, ensureReservation, unplaceableFor };
}
