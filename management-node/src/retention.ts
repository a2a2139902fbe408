// Retention: done and dead tasks are deleted `retention` after they finished (or
// sooner, oldest first, beyond max_finished_tasks), and workers gone that long
// with nothing assigned are forgotten, from memory and from the store, a batch at
// a time on the tick so the store sees small transactions.
import type { Task } from '../../proto/gen/schedapi/v1/types_pb.js';
import type { Logger } from '../../common/logger.js';
import type { Journal } from './journal.js';
import { taskKey, workerKey } from './store/records.js';
import type { Submissions } from './submissions.js';
import { isTerminal } from './task-lifecycle.js';
import type { WorkerRegistry } from './worker-registry.js';

const RETENTION_SWEEP_MS = 5000;
const SWEEP_BATCH = 1000;
const DEFAULT_RETENTION_MS = 24 * 3600_000;
const DEFAULT_MAX_FINISHED = 100_000;

export interface RetentionOptions {
  /** Done and dead tasks are deleted this long after they finished... */
  retentionMs?: number | undefined;
  /** ...or sooner, oldest first, while more than this many are kept. */
  maxFinishedTasks?: number | undefined;
}

export class Retention {
  private nextSweep = 0;

  constructor(
    private readonly tasks: Map<string, Task>,
    private readonly submissions: Submissions,
    private readonly registry: WorkerRegistry,
    private readonly journal: Journal,
    private readonly opts: RetentionOptions,
    private readonly log: Logger,
    /** Told of each task deleted (its dependents can never run: gates.ts). */
    private readonly removed: (task: Task) => void = () => undefined,
  ) {}

  /** sweep (on the tick) runs both sweeps every few seconds. */
  sweep(now: number): void {
    if (now < this.nextSweep) return;
    this.nextSweep = now + RETENTION_SWEEP_MS;
    this.sweepFinished(now);
    this.sweepWorkers(now);
  }

  /**
   * sweepFinished deletes done/dead tasks past the retention period, and the oldest finished
   * ones beyond max_finished_tasks, at most SWEEP_BATCH per sweep so the store sees small txns.
   */
  sweepFinished(now: number): number {
    const cutoff = BigInt(now - (this.opts.retentionMs ?? DEFAULT_RETENTION_MS));
    let finished = 0;
    for (const t of this.tasks.values()) if (isTerminal(t)) finished++;
    let excess = finished - (this.opts.maxFinishedTasks ?? DEFAULT_MAX_FINISHED);
    let deleted = 0;
    const expired = (t: Task): boolean => isTerminal(t) && (excess > 0 || t.finishedUnixMs <= cutoff);
    const remove = (t: Task): void => {
      this.tasks.delete(t.id);
      this.journal.unwatch(t.id);
      this.journal.delete(taskKey(t.id));
      this.removed(t);
      excess--;
      deleted++;
    };
    const keysSeen = new Set<string>();
    // Ids are time-ordered, so this walks the oldest submissions first.
    for (const t of this.tasks.values()) {
      if (deleted >= SWEEP_BATCH) break;
      if (!expired(t)) continue;
      if (!t.idempotencyKey) {
        remove(t);
        continue;
      }
      // A keyed submission goes as a whole, with its key, so a retry never re-creates part of it.
      if (keysSeen.has(t.idempotencyKey)) continue;
      keysSeen.add(t.idempotencyKey);
      const sub = this.submissions.get(t.idempotencyKey);
      const members = sub ? sub.ids.flatMap((id) => this.tasks.get(id ?? '') ?? []) : [t];
      if (!members.every(expired)) continue;
      members.forEach(remove);
      this.submissions.delete(t.idempotencyKey);
    }
    if (deleted > 0) this.log.info({ deleted }, 'removed finished tasks past retention');
    return deleted;
  }

  /**
   * sweepWorkers forgets workers gone longer than the retention period with nothing assigned,
   * so a fleet that churns through ids does not grow the store forever.
   */
  sweepWorkers(now: number): number {
    const cutoff = BigInt(now - (this.opts.retentionMs ?? DEFAULT_RETENTION_MS));
    let removed = 0;
    for (const w of this.registry.workers.values()) {
      if (this.registry.inUse(w.id) || w.lastSeenUnixMs > cutoff) continue;
      this.registry.forget(w.id);
      this.journal.delete(workerKey(w.id));
      removed++;
    }
    if (removed > 0) this.log.info({ removed }, 'removed workers gone past retention');
    return removed;
  }
}
