// Attempts: what happens to a task once it has been offered, driven by what its
// worker reports (Accepted, Rejected, Started, Finished, the running list of its
// Hello, its first Pong) and by what the manager decides (cancel, withdrawal of
// an unanswered offer, loss of the worker, timeouts). Each change is a transition
// of task-lifecycle.ts, applied here with its effects: the offer closed, the
// worker's load moved, the task placed again, the change stored, the worker told.
// A report counts only for the current attempt on the worker it was offered to.
import { TaskState, type Task } from '../../proto/gen/schedapi/v1/types_pb.js';
import type { Finished, TaskAttempt } from '../../proto/gen/schedapi/v1/worker_pb.js';
import { StoreRefusedError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { Dispatch } from './dispatch.js';
import type { Journal } from './journal.js';
import type { ClusterStats } from './metrics.js';
import type { OfferLedger } from './offer-ledger.js';
import type { Recovery } from './recovery.js';
import { adopt, died, finish, isCurrentAttempt, isTerminal, mayAdopt, retried, retriesLeft, scheduled, startedAt } from './task-lifecycle.js';
import { orderTimes } from './task-rules.js';
import { boundFinished } from './worker-input.js';
import type { Session, WorkerRegistry } from './worker-registry.js';

const WITHDRAWN = 'offer withdrawn (ack timeout)';

export class Attempts {
  /** Scheduled tasks being cancelled, with their SIGTERM→SIGKILL grace (0 = worker default). */
  private readonly cancelling = new Map<string, number>();
  /** Of those, the ones stopped by their worker's drain deadline: placed again (or dead drained), not cancelled. */
  private readonly drained = new Set<string>();

  constructor(
    private readonly tasks: ReadonlyMap<string, Task>,
    private readonly offers: OfferLedger,
    private readonly registry: WorkerRegistry,
    private readonly dispatch: Dispatch,
    private readonly recovery: Recovery,
    private readonly journal: Journal,
    private readonly stats: ClusterStats,
    private readonly now: () => number,
    private readonly log: Logger,
  ) {}

  /**
   * cancel stops tasks: pending ones end dead at once (an outstanding offer is withdrawn);
   * scheduled ones are told to stop and end dead when their worker reports the exit.
   * Resolves once the changes are stored.
   */
  async cancel(tasks: Task[], graceMs: number): Promise<void> {
    const writes: Array<Promise<void>> = [];
    for (const task of tasks) {
      if (task.state === TaskState.PENDING) {
        const offer = this.offers.get(task.id);
        if (offer) this.sendCancel(offer.workerId, task.id, offer.attempt, 'cancelled', graceMs);
        writes.push(this.kill(task, 'cancelled'));
      } else if (task.state === TaskState.SCHEDULED) {
        this.drained.delete(task.id); // an operator's cancel outranks a drain's
        this.cancelling.set(task.id, graceMs);
        this.sendCancel(task.workerId, task.id, task.attempt, 'cancelled', graceMs);
      }
    }
    await Promise.all(writes);
  }

  accepted(workerId: string, ta: TaskAttempt | undefined): void {
    if (!ta) return;
    const task = this.tasks.get(ta.taskId);
    const offer = this.offers.of(ta.taskId, workerId, ta.attempt);
    if (offer?.withdrawn) return; // CancelTask is on its way; its Finished settles it
    if (!task || !offer || task.attempt !== ta.attempt) {
      if (!task || !isCurrentAttempt(task, workerId, ta.attempt) || isTerminal(task)) {
        this.registry.send(workerId, { case: 'cancelTask', value: { task: ta, reason: 'offer expired' } });
      }
      return;
    }
    this.offers.close(ta.taskId);
    this.markScheduled(task);
  }

  rejected(workerId: string, ta: TaskAttempt | undefined, reason: string): void {
    if (!ta) return;
    const offer = this.offers.of(ta.taskId, workerId, ta.attempt);
    if (!offer) return;
    this.log.info({ task: ta.taskId, worker: workerId, reason }, offer.withdrawn ? 'withdrawn offer confirmed' : 'offer rejected');
    if (!offer.withdrawn) this.stats.rejected++;
    const why = offer.withdrawn ? `no answer from worker ${workerId} within the ack timeout` : `rejected by worker ${workerId}: ${reason}`;
    this.retryOffer(ta.taskId, workerId, why, offer.withdrawn ? 'ack-timeout' : 'no worker accepted the task');
  }

  started(workerId: string, ta: TaskAttempt | undefined, pid: number, startedUnixMs: bigint): void {
    if (ta && this.offers.get(ta.taskId)?.withdrawn) return;
    const task = ta && this.currentAttempt(workerId, ta);
    if (!task || isTerminal(task)) return;
    startedAt(task, pid, startedUnixMs);
    if (task.state === TaskState.PENDING) this.acceptImplicitly(task);
    else this.journal.writeLater(task);
    orderTimes(task);
  }

  /** finished stores a result; the worker is acknowledged once it is committed (or was already). */
  finished(workerId: string, f: Finished): void {
    const ta = f.task;
    if (!ta) return;
    boundFinished(f);
    const ack = () => this.registry.send(workerId, { case: 'finishedAck', value: { task: ta } });
    const withdrawn = this.offers.withdrawnFrom(ta.taskId, workerId, ta.attempt);
    // A withdrawn offer that was run anyway and stopped by our CancelTask (or lost) did not run to
    // its end: the task goes back to the queue. One that ended on its own ran: its result stands.
    if (withdrawn && (f.lost || f.signal !== '')) {
      this.retryOffer(ta.taskId, workerId, `offer to worker ${workerId} withdrawn (no answer within the ack timeout)`, 'ack-timeout');
      ack();
      return;
    }
    const task = withdrawn ? this.tasks.get(ta.taskId) : this.currentAttempt(workerId, ta);
    if (task && isTerminal(task)) {
      // Already recorded (a repeat): acknowledged once that record is stored, not before, or the
      // worker would drop its only durable copy while the manager's write is still failing.
      this.journal.committed(task.id).then(ack, () => undefined);
      return;
    }
    if (!task) {
      // Unknown or superseded: nothing to store, but let the worker forget it.
      const current = this.tasks.get(ta.taskId);
      this.log.info(
        { task: ta.taskId, attempt: ta.attempt, worker: workerId, state: current ? TaskState[current.state] : 'unknown', currentAttempt: current?.attempt, currentWorker: current?.workerId },
        'result not stored: not the current attempt of this worker',
      );
      ack();
      return;
    }
    if (f.lost) {
      // Not a result: the worker lost the attempt (it restarted, or lost the manager too long).
      const why = `worker-lost: ${f.error || 'the worker killed it'}`;
      if (task.state === TaskState.PENDING) this.retryOffer(task.id, workerId, why, 'worker-lost');
      else this.lose(task, why);
      this.journal.committed(task.id).then(ack, () => undefined);
      return;
    }
    if (this.drained.delete(task.id)) {
      this.cancelling.delete(task.id);
      // Stopped by the drain: placed again while it has retries, else dead. Only a success keeps
      // its result (it may have ended before the cancel reached it): a process that exits with a
      // code of its own on SIGTERM cannot be told from one that failed by itself, and the drain
      // is what ended it.
      if (f.exitCode !== 0 || f.signal !== '') {
        this.lose(task, 'drained');
        this.journal.committed(task.id).then(ack, () => undefined);
        return;
      }
    }
    this.log.debug({ task: task.id, attempt: ta.attempt, worker: workerId, state: TaskState[task.state] }, 'result');
    this.offers.close(task.id);
    this.dispatch.forget(task.id);
    this.registry.unassign(workerId, task.id);
    // A cancelled task that exited ran, but not to its end: it is dead, with how it ended kept.
    finish(task, f, this.cancelling.delete(task.id), this.now());
    this.countEnd(task);
    this.journal.writeTask(task).then(ack, (err: unknown) => {
      // Refused for good: stored again without its output (see journal.ts); the worker may forget it once that lands.
      if (err instanceof StoreRefusedError) this.journal.committed(task.id).then(ack, () => undefined);
    });
    this.dispatch.placeQueued();
  }

  /** reconcile compares what a (re)connecting worker runs, as its Hello lists, with what the manager believes. */
  reconcile(session: Session, running: TaskAttempt[]): void {
    const workerId = session.workerId;
    const listed = new Set(running.map((ta) => `${ta.taskId}.${ta.attempt}`));
    const unreported = new Set<string>();
    for (const taskId of this.registry.assignedTo(workerId)) {
      const task = this.tasks.get(taskId);
      if (task?.state === TaskState.SCHEDULED && !listed.has(`${taskId}.${task.attempt}`)) unreported.add(taskId);
    }
    if (unreported.size > 0) session.unreported = unreported;
    const offers = new Set<string>();
    for (const o of this.offers.toWorker(workerId)) if (!listed.has(`${o.taskId}.${o.attempt}`)) offers.add(o.taskId);
    if (offers.size > 0) session.unreportedOffers = offers;
    for (const ta of running) {
      if (this.offers.withdrawnFrom(ta.taskId, workerId, ta.attempt)) {
        // It accepted the offer we gave up on: stop it; its Finished lets the task go elsewhere.
        this.sendCancel(workerId, ta.taskId, ta.attempt, WITHDRAWN);
        continue;
      }
      const task = this.currentAttempt(workerId, ta);
      if (task && !isTerminal(task)) {
        // Running there: its Accepted may have been lost with the old stream.
        if (task.state === TaskState.PENDING) this.acceptImplicitly(task);
        const grace = this.cancelling.get(task.id);
        if (grace !== undefined) this.sendCancel(workerId, task.id, task.attempt, this.drained.has(task.id) ? 'drained' : 'cancelled', grace);
        continue;
      }
      session.link.send({ case: 'cancelTask', value: { task: ta, reason: 'attempt superseded' } });
    }
  }

  /**
   * reported: a worker's first Pong since its Hello. What it neither listed nor resent a result of
   * before it does not run: its scheduled tasks are lost, its offers go out again (to it, too).
   */
  reported(session: Session): void {
    const workerId = session.workerId;
    for (const taskId of session.unreported ?? []) {
      const task = this.tasks.get(taskId);
      if (task && task.state === TaskState.SCHEDULED && task.workerId === workerId) this.lose(task, 'worker-lost: the worker no longer runs it');
    }
    delete session.unreported;
    // Offers made to an earlier stream that it neither runs nor has a result of: it never got them
    // (no refusal), so they may go to it again.
    for (const taskId of session.unreportedOffers ?? []) {
      if (this.offers.get(taskId)?.workerId === workerId) this.retryOffer(taskId, workerId, `worker ${workerId} reconnected without the offer`, 'ack-timeout', false);
    }
    delete session.unreportedOffers;
  }

  /** workerGone: the worker is gone past its grace; its orphan timeout has killed what it ran, so nothing of it is live. */
  workerGone(workerId: string): void {
    for (const taskId of this.registry.assignedTo(workerId)) {
      const task = this.tasks.get(taskId);
      if (task && task.state === TaskState.SCHEDULED && task.workerId === workerId) this.lose(task, 'worker-lost');
      if (this.offers.get(taskId)?.workerId === workerId) this.retryOffer(taskId, workerId, `worker ${workerId} went away with the offer`, 'ack-timeout');
    }
  }

  /**
   * expireOffers (on the tick): an offer unanswered within the ack timeout is withdrawn (CancelTask);
   * a worker that confirms neither the offer nor its withdrawal in another ack timeout is dropped,
   * and the task moves once that worker is gone past its grace.
   */
  expireOffers(clock: number): void {
    for (const offer of this.offers.due(clock)) {
      if (offer.withdrawn) {
        this.registry.drop(offer.workerId, 'no answer to an offer or its withdrawal', `no answer to the offer of task ${offer.taskId} or its withdrawal`);
        continue;
      }
      this.log.warn({ task: offer.taskId, worker: offer.workerId }, 'no answer to offer within the ack timeout: withdrawing it');
      this.stats.ackTimeouts++;
      this.offers.withdraw(offer, clock);
      this.sendCancel(offer.workerId, offer.taskId, offer.attempt, WITHDRAWN);
    }
  }

  /**
   * drainDue (on the tick): the worker is past its drain deadline, so each attempt it runs is
   * cancelled (with the worker's grace). Once the worker reports it ended, and not before, the
   * task is placed again if it has retries left, else it ends dead drained (finished, lose).
   */
  drainDue(workerId: string): void {
    for (const taskId of this.registry.assignedTo(workerId)) {
      const task = this.tasks.get(taskId);
      if (task?.state !== TaskState.SCHEDULED || task.workerId !== workerId || this.cancelling.has(taskId)) continue;
      this.log.info({ task: taskId, worker: workerId, attempt: task.attempt }, 'drain deadline passed: stopping the task');
      this.cancelling.set(taskId, 0);
      this.drained.add(taskId);
      this.sendCancel(workerId, taskId, task.attempt, 'drained');
    }
  }

  /** kill ends a task dead; resolves once that is stored. */
  kill(task: Task, reason: string): Promise<void> {
    this.offers.close(task.id);
    this.dispatch.forget(task.id);
    this.cancelling.delete(task.id);
    this.drained.delete(task.id);
    if (task.workerId) this.registry.unassign(task.workerId, task.id);
    died(task, reason, this.now());
    this.countEnd(task);
    this.log.info({ task: task.id, reason }, 'task dead');
    const stored = this.journal.writeTask(task);
    stored.catch(() => undefined);
    return stored;
  }

  /**
   * currentAttempt returns the task if (workerId, attempt) is its current attempt, or one a
   * recovered task adopts (task-lifecycle.ts, mayAdopt) while no offer of it is out.
   */
  private currentAttempt(workerId: string, ta: TaskAttempt): Task | undefined {
    const task = this.tasks.get(ta.taskId);
    if (!task) return undefined;
    if (isCurrentAttempt(task, workerId, ta.attempt)) return task;
    if (!this.offers.has(task.id) && mayAdopt(task, ta.attempt, this.recovery.heldFromKnownWorker(task.id, workerId))) {
      this.dispatch.unqueue(task.id);
      adopt(task, workerId, ta.attempt);
      return task;
    }
    return undefined;
  }

  /** retryOffer takes an unanswered or refused offer back and tries the next worker, or ends the task. */
  private retryOffer(taskId: string, workerId: string, why: string, deadReason: string, exclude = true): void {
    const dead = this.dispatch.takeBack(taskId, workerId, why, deadReason, exclude);
    const task = this.tasks.get(taskId);
    if (dead !== undefined && task) void this.kill(task, dead);
  }

  private markScheduled(task: Task): void {
    scheduled(task, this.now());
    this.registry.assign(task.workerId, task.id);
    this.dispatch.allocate(task);
    this.journal.writeLater(task);
  }

  /** Started before Accepted arrived (messages are ordered, so only after a restart). */
  private acceptImplicitly(task: Task): void {
    this.offers.close(task.id);
    this.recovery.release(task.id);
    this.markScheduled(task);
  }

  /**
   * lose handles a task whose worker is gone: placed again with a new attempt (so a late report
   * from the old one is ignored and a reconnecting worker is told to kill it) while retries
   * remain, else dead.
   */
  private lose(task: Task, reason: string): void {
    // A task being cancelled is not placed again: it ends as cancelled. One stopped by a drain is.
    const drained = this.drained.delete(task.id);
    const cancelled = this.cancelling.delete(task.id) && !drained;
    if (cancelled || !retriesLeft(task)) {
      void this.kill(task, cancelled ? `cancelled (${reason})` : reason);
      return;
    }
    this.registry.unassign(task.workerId, task.id);
    retried(task, reason);
    this.stats.retried++;
    this.log.info({ task: task.id, reason, retry: task.retriesUsed }, 'task placed again');
    void this.journal.writeTask(task).catch(() => undefined);
    this.dispatch.release(task.id);
    this.dispatch.enqueue(task);
    this.dispatch.placeSoon();
  }

  private sendCancel(workerId: string, taskId: string, attempt: number, reason: string, graceMs = 0): void {
    this.registry.send(workerId, { case: 'cancelTask', value: { task: { taskId, attempt }, reason, graceMs } });
  }

  private countEnd(task: Task): void {
    if (task.state === TaskState.DONE) this.stats.done++;
    else {
      const reason = task.deadReason.split(':')[0]!;
      this.stats.dead.set(reason, (this.stats.dead.get(reason) ?? 0) + 1);
    }
  }
}
