// Recovery after a restart: the pending tasks loaded from the store are held, not
// placed, until every worker that was around before the restart has reconnected
// and reported what it runs and kept (its first Pong), or until recovery_grace.
// A held task may be running on a worker whose Accepted never got stored; only a
// worker the store knew may report such an attempt (task-lifecycle.ts, mayAdopt).
// New tasks don't wait.
import { WorkerState, type Worker } from '../../proto/gen/schedapi/v1/types_pb.js';
import type { Logger } from '../../common/logger.js';

export class Recovery {
  /** Pending tasks loaded after a restart, not placed while the hold lasts. */
  private readonly held = new Set<string>();
  /** On the deadline clock: the hold ends then at the latest (0: over). */
  private holdUntil = 0;
  /** Workers around before the restart that have not reported since: the hold ends early once none is left. */
  private readonly awaiting = new Set<string>();
  /** Workers known from the store at startup: only they may report attempts the store does not hold yet. */
  private readonly known = new Set<string>();

  constructor(private readonly log: Logger) {}

  /** How many tasks are held. */
  get size(): number {
    return this.held.size;
  }

  /** knownWorker notes a worker read from the store, as stored: connected, or seen since `recentSince`, it is waited for. */
  knownWorker(w: Worker, recentSince: number): void {
    // Offers go out before their write lands: a known worker may run tasks the store does not know of.
    this.known.add(w.id);
    if (w.state === WorkerState.CONNECTED || Number(w.lastSeenUnixMs) >= recentSince) this.awaiting.add(w.id);
  }

  /** hold keeps a recovered pending task from placement until the hold is over. */
  hold(taskId: string): void {
    this.held.add(taskId);
  }

  /** holdUntil sets when the hold ends at the latest, on the deadline clock. */
  endBy(clock: number): void {
    this.holdUntil = clock;
  }

  isHeld(taskId: string): boolean {
    return this.held.has(taskId);
  }

  /** release drops a task from the hold (it was adopted, scheduled, or ended). */
  release(taskId: string): void {
    this.held.delete(taskId);
  }

  /** heldFromKnownWorker: the task is held and the worker was known before the restart (see mayAdopt). */
  heldFromKnownWorker(taskId: string, workerId: string): boolean {
    return this.held.has(taskId) && this.known.has(workerId);
  }

  /** reported: a worker's first Pong since its Hello; the last one awaited ends the hold. */
  reported(workerId: string): void {
    if (this.awaiting.delete(workerId) && this.awaiting.size === 0) this.holdUntil = 0;
  }

  /** over returns the held tasks, once, when the hold is over; none while it lasts. */
  over(clock: number): string[] {
    if (this.held.size === 0 || clock < this.holdUntil) return [];
    this.log.info({ tasks: this.held.size, waitedFor: [...this.awaiting] }, 'recovery hold over: placing the pending tasks held since the restart');
    const ids = [...this.held];
    this.held.clear();
    return ids;
  }
}
