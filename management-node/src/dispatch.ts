// Dispatch: feeds pending tasks to the placement core (scheduler/, which decides
// where) and turns its placements into offers: one StartTask per new attempt.
// It also takes back an offer that was refused or went unanswered and tries the
// next worker, and says when nobody will ever take a task (refused by every
// worker able to run it, or past its schedule timeout).
import { USER_LABEL_VALUE, userLabelKey } from '../../common/run-user.js';
import { clone } from '@bufbuild/protobuf';
import { TaskSchema, TaskState, type Task } from '../../proto/gen/schedapi/v1/types_pb.js';
import type { Logger } from '../../common/logger.js';
import type { FairClock } from './fair-clock.js';
import { OPEN_GATE, type PlacementGate } from './gates.js';
import type { Journal } from './journal.js';
import type { ClusterStats } from './metrics.js';
import type { OfferLedger } from './offer-ledger.js';
import type { Recovery } from './recovery.js';
import { constraintList, holds, missingLabel } from './scheduler/feasibility.js';
import type { GroupRef, Resources, Scheduler } from './scheduler/scheduler.js';
import { offered, takenBack } from './task-lifecycle.js';
import { resourcesOf } from './task-rules.js';
import type { WorkerRegistry } from './worker-registry.js';

/** groupOf names a task's group and its max_parallel for the placement core; undefined outside a group. */
export const groupOf = (task: Task): GroupRef | undefined =>
  task.groupId ? { id: task.groupId, maxParallel: task.spec?.maxParallel ?? 0 } : undefined;

export class Dispatch {
  /** Submission order of live tasks, kept across re-queues so a retried task keeps its place. */
  private readonly seqs = new Map<string, number>();
  private nextSeq = 0;
  /** Pending tasks with a schedule timeout, soonest first once sorted. */
  private readonly scheduleDeadlines: Array<{ taskId: string; at: number }> = [];
  private scheduleDeadlinesSorted = true;
  /** When each admitted task could first be placed: its schedule timeout counts from then. */
  private readonly placeableSince = new Map<string, number>();
  private placeScheduled = false;
  /** What keeps a pending task from the queue before placement: held, --at, dependencies (gates.ts). */
  gate: PlacementGate = OPEN_GATE;

  constructor(
    private readonly tasks: ReadonlyMap<string, Task>,
    private readonly sched: Scheduler,
    private readonly offers: OfferLedger,
    private readonly registry: WorkerRegistry,
    private readonly recovery: Recovery,
    private readonly journal: Journal,
    private readonly stats: ClusterStats,
    private readonly defaults: Resources,
    private readonly clock: FairClock,
    private readonly now: () => number,
    private readonly log: Logger,
    /** False while this manager may not act (see ClusterOptions.mayAct): nothing is offered. */
    private readonly mayAct: () => boolean = () => true,
  ) {}

  /** sequence gives a task its place in submission order. */
  sequence(taskId: string): void {
    this.seqs.set(taskId, this.nextSeq++);
  }

  /**
   * admit queues a task for placement once its first write has landed, and again when a gate
   * that kept it opens (gates.ts). Its schedule timeout counts from the first time it could be placed.
   */
  admit(task: Task): void {
    if (task.state !== TaskState.PENDING || this.tasks.get(task.id) !== task) return;
    // Held since a restart: the end of that hold queues it (placeQueued), past the gates again.
    if (this.gate.closed(task) || this.recovery.isHeld(task.id)) return;
    this.enqueue(task);
    const timeout = task.spec?.scheduleTimeoutMs ?? 0;
    if (timeout > 0 && !this.placeableSince.has(task.id)) {
      const since = Math.max(Number(task.createdUnixMs), this.now());
      this.placeableSince.set(task.id, since);
      this.scheduleDeadlines.push({ taskId: task.id, at: since + timeout });
      this.scheduleDeadlinesSorted = false;
    }
    this.placeSoon();
  }

  enqueue(task: Task): void {
    const spec = task.spec;
    this.sched.enqueue({
      id: task.id,
      resources: resourcesOf(task, this.defaults),
      constraints: spec?.user ? { ...spec.constraints, [userLabelKey(spec.user)]: USER_LABEL_VALUE } : (spec?.constraints ?? {}),
      priority: spec?.priority ?? 0,
      seq: this.seqs.get(task.id) ?? this.nextSeq++,
      strategy: spec?.strategy === 'spread' || spec?.strategy === 'binpack' ? spec.strategy : undefined,
      group: groupOf(task),
    });
  }

  /**
   * hold keeps a pending task recovered after a restart from placement until the workers have
   * reported (recovery.ts). It may be running unseen, so it counts against its group's max_parallel.
   */
  hold(task: Task): void {
    this.recovery.hold(task.id);
    const group = groupOf(task);
    if (group) this.sched.hold(task.id, group);
  }

  /** setGroupLimit applies a group's new max_parallel (tasks update) to placement. */
  setGroupLimit(groupId: string, maxParallel: number): void {
    this.sched.setGroupLimit(groupId, maxParallel);
    this.placeSoon();
  }

  /** forget drops a task from placement: queue, exclusions, allocation, recovery hold. */
  forget(taskId: string): void {
    this.sched.remove(taskId);
    this.seqs.delete(taskId);
    this.placeableSince.delete(taskId);
    this.recovery.release(taskId);
  }

  /** unqueue takes a held task out of placement, keeping its place: a worker reported running it. */
  unqueue(taskId: string): void {
    this.sched.remove(taskId);
    this.recovery.release(taskId);
  }

  /** allocate records what a task scheduled on its worker reserves there. */
  allocate(task: Task): void {
    if (this.sched.allocation(task.id)?.workerId !== task.workerId) this.sched.allocate(task.id, task.workerId, resourcesOf(task, this.defaults), groupOf(task));
  }

  /** release frees a task's allocation (exclusions stay for a retry). */
  release(taskId: string): void {
    this.sched.release(taskId);
  }

  /** placeSoon runs placement once after the current burst of events (one run for a whole group). */
  placeSoon(): void {
    if (this.placeScheduled) return;
    this.placeScheduled = true;
    queueMicrotask(() => {
      this.placeScheduled = false;
      this.placeQueued();
    });
  }

  /** placeQueued offers what fits now, in priority then submission order, with backfill. */
  placeQueued(): void {
    if (!this.mayAct()) return;
    for (const id of this.recovery.over(this.clock.value)) {
      const task = this.tasks.get(id);
      if (task?.state !== TaskState.PENDING || this.offers.has(id)) continue;
      // Kept by a gate (stored so): offered to nobody since, so live nowhere, and not counted as live.
      if (this.gate.closed(task)) this.sched.release(id);
      else this.enqueue(task);
    }
    if (this.registry.connected === 0 || this.sched.queued() === 0) return;
    for (const p of this.sched.schedule()) {
      const task = this.tasks.get(p.taskId);
      if (task?.state !== TaskState.PENDING) {
        this.sched.remove(p.taskId);
        continue;
      }
      this.offer(task, p.workerId);
    }
  }

  private offer(task: Task, workerId: string): void {
    offered(task, workerId);
    this.log.debug({ task: task.id, attempt: task.attempt, worker: workerId }, 'offer');
    this.offers.add(task.id, task.attempt, workerId, this.clock.value);
    this.stats.offers++;
    this.registry.assign(workerId, task.id);
    this.journal.writeLater(task);
    this.registry.send(workerId, {
      case: 'startTask',
      value: { taskId: task.id, attempt: task.attempt, spec: task.spec, groupId: task.groupId, groupIndex: task.groupIndex, groupSize: task.groupSize },
    });
  }

  /**
   * takeBack closes an unanswered or refused offer and places the task again, not on that worker
   * unless exclude is false. Returns why the task must end dead instead, if it must.
   */
  takeBack(taskId: string, workerId: string, why: string, deadReason: string, exclude = true): string | undefined {
    const task = this.tasks.get(taskId);
    this.offers.close(taskId);
    this.registry.unassign(workerId, taskId);
    this.sched.release(taskId);
    if (!task || task.state !== TaskState.PENDING) return undefined;
    this.log.info({ task: taskId, worker: workerId, attempt: task.attempt, why }, 'offer taken back; placing the task again');
    // Its schedule timeout passed while this offer was out: nothing else may place it now.
    const timeout = task.spec?.scheduleTimeoutMs ?? 0;
    if (timeout > 0 && this.now() >= (this.placeableSince.get(taskId) ?? Number(task.createdUnixMs)) + timeout) return 'schedule-timeout';
    // Refused or ignored: do not offer it to this worker again.
    if (exclude) this.sched.exclude(taskId, workerId);
    takenBack(task, why);
    this.enqueue(task);
    // Every worker that could run it, connected or not, has refused or ignored it: nothing left to wait for.
    if (this.sched.unplaceable(taskId) === 'excluded' || this.refusedByAll(task)) return deadReason;
    this.placeSoon();
    return undefined;
  }

  /** refusedByAll: every known worker big enough and labelled for the task is excluded from it (O(workers): only on a retry). */
  private refusedByAll(task: Task): boolean {
    const excluded = this.sched.excludedFrom(task.id);
    if (excluded.size === 0) return false;
    const need = resourcesOf(task, this.defaults);
    const constraints = constraintList(task.spec?.constraints ?? {});
    for (const w of this.registry.workers.values()) {
      const capacity = { millicpu: Number(w.capacity?.millicpu ?? 0n), memoryBytes: Number(w.capacity?.memoryBytes ?? 0n) };
      if (!excluded.has(w.id) && holds(capacity, need) && missingLabel(w.labels, constraints) === undefined) return false;
    }
    return true;
  }

  /** overdue (on the tick) lists the tasks past their schedule timeout that nobody holds: an offer in flight may still be accepted. */
  overdue(now: number): Task[] {
    if (!this.scheduleDeadlinesSorted) {
      this.scheduleDeadlines.sort((a, b) => a.at - b.at);
      this.scheduleDeadlinesSorted = true;
    }
    const due: Task[] = [];
    while (this.scheduleDeadlines.length > 0 && this.scheduleDeadlines[0]!.at <= now) {
      const task = this.tasks.get(this.scheduleDeadlines.shift()!.taskId);
      if (!task || task.state !== TaskState.PENDING || this.offers.has(task.id)) continue;
      // Kept by a gate since (held): not waiting for a worker. Its timeout counts again once admitted.
      if (this.gate.reason(task) !== undefined) this.placeableSince.delete(task.id);
      else due.push(task);
    }
    return due;
  }

  /** view is the task as clients see it: a pending one says why it waits. */
  view(task: Task): Task {
    if (task.state !== TaskState.PENDING) return task;
    const copy = clone(TaskSchema, task);
    copy.pendingReason = this.pendingReason(task);
    return copy;
  }

  /**
   * pendingReason says why a pending task waits: its offer, the recovery hold, or the
   * scheduler's placement summary ("0/3 workers fit: 2 insufficient memory, ...").
   */
  private pendingReason(task: Task): string {
    const offer = this.offers.get(task.id);
    if (offer) return `offered to worker ${offer.workerId}, waiting for its answer`;
    const gated = this.gate.reason(task);
    if (gated !== undefined) return gated;
    if (this.recovery.isHeld(task.id)) return 'manager restarted: waiting for workers to reconnect and report what they run';
    if (this.registry.connected === 0) return 'no worker connected';
    return this.sched.explain(task.id) ?? 'queued: placed as soon as the scheduler runs';
  }

  /** Tasks waiting in the placement queue. */
  queued(): number {
    return this.sched.queued();
  }
}
