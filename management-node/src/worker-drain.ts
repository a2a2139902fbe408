// Draining (DrainWorker): no new placements on a worker, for good or until a
// deadline after which what it runs is stopped (attempts.ts, drainDue) and placed
// again elsewhere while retries last. The deadline is wall-clock time in the
// worker's record, so it holds across a restart or a failover.
import type { Worker } from '../../proto/gen/schedapi/v1/types_pb.js';
import type { Logger } from '../../common/logger.js';
import type { Journal } from './journal.js';
import type { Scheduler } from './scheduler/scheduler.js';

export class Drains {
  /** Draining workers with a deadline (few): the tick looks at these only. */
  private readonly deadlines = new Set<string>();

  constructor(
    private readonly workers: ReadonlyMap<string, Worker>,
    private readonly sched: Scheduler,
    private readonly journal: Journal,
    private readonly now: () => number,
    private readonly log: Logger,
  ) {}

  /**
   * drain stops (or resumes) placements on a worker; what runs there goes on, until deadlineMs
   * from now when one is given. Undrain clears the deadline. Resolves once stored.
   */
  async drain(worker: Worker, drain: boolean, deadlineMs = 0): Promise<Worker> {
    worker.draining = drain;
    worker.drainDeadlineUnixMs = drain && deadlineMs > 0 ? BigInt(this.now() + deadlineMs) : 0n;
    this.track(worker);
    this.sched.setDraining(worker.id, drain || worker.leaving);
    this.log.info({ worker: worker.id, draining: drain, deadlineMs: deadlineMs || undefined }, drain ? 'worker drained' : 'worker undrained');
    await this.journal.writeWorker(worker);
    return worker;
  }

  /** track notes a worker's deadline (a drain, or a record loaded after a restart). */
  track(w: Worker): void {
    if (w.draining && w.drainDeadlineUnixMs > 0n) this.deadlines.add(w.id);
    else this.deadlines.delete(w.id);
  }

  /** due (on the tick) lists the draining workers past their deadline: what they run is to be stopped. */
  due(now: number): string[] {
    const due: string[] = [];
    for (const id of this.deadlines) {
      const w = this.workers.get(id);
      if (!w || !w.draining || w.drainDeadlineUnixMs === 0n) this.deadlines.delete(id); // removed, or undrained
      else if (Number(w.drainDeadlineUnixMs) <= now) due.push(id);
    }
    return due;
  }
}
