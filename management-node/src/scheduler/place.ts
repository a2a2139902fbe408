// The scheduler core is pure: it sees a snapshot of candidate workers and
// returns a choice. No I/O, no timers, no gRPC.

export interface WorkerView {
  id: string;
  connected: boolean;
  draining: boolean;
  /** Tasks offered to or running on the worker. */
  load: number;
  /** Concurrent tasks the worker wants at most (its cpu count). */
  slots: number;
}

/** feasible: the worker may take one more task. */
export function feasible(worker: WorkerView, excluded: ReadonlySet<string>): boolean {
  return worker.connected && !worker.draining && worker.load < worker.slots && !excluded.has(worker.id);
}

/** score: lower is better; spreads by load relative to the worker's slots. */
export function score(worker: WorkerView): number {
  return worker.load / Math.max(1, worker.slots);
}

/** pickWorker returns the feasible worker with the best score, or undefined. Ties go to the lower id. */
export function pickWorker(workers: Iterable<WorkerView>, excluded: ReadonlySet<string> = new Set()): WorkerView | undefined {
  let best: WorkerView | undefined;
  let bestScore = Infinity;
  for (const w of workers) {
    if (!feasible(w, excluded)) continue;
    const s = score(w);
    if (s < bestScore || (s === bestScore && best !== undefined && w.id < best.id)) {
      best = w;
      bestScore = s;
    }
  }
  return best;
}
