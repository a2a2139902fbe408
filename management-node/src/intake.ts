// Intake: RunTask's submissions. New tasks are stored pending and queued for
// placement only once their write has landed, so no crash can erase a task that
// runs (docs/architecture.md, rule 1). With an idempotency key (submissions.ts), a
// repeat of the request, also one racing it, answers with the same tasks and
// creates only those a crash kept from being stored (rule 6).
import { create, equals } from '@bufbuild/protobuf';
import { randomUUID } from 'node:crypto';
import { TaskSchema, TaskSpecSchema, TaskState, type Task, type TaskSpec } from '../../proto/gen/schedapi/v1/types_pb.js';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, StoreUnavailableError } from '../../common/errors.js';
import { newTaskId } from '../../common/ids.js';
import type { Logger } from '../../common/logger.js';
import type { Dispatch } from './dispatch.js';
import { memberSpec } from './group-template.js';
import type { Journal } from './journal.js';
import type { ClusterStats } from './metrics.js';
import type { Resources } from './scheduler/scheduler.js';
import { taskKey } from './store/records.js';
import { checkIdempotencyKey, type Submission, type Submissions } from './submissions.js';
import { requestOf, validateSpec } from './task-rules.js';

/** Where a task came from, stored in it: the schedule and time slot that created it (schedules/). */
export type TaskOrigin = Pick<Task, 'schedule' | 'scheduledForUnixMs'>;

/** Tasks one RunTask may create (--count). */
const MAX_COUNT = 10_000;

export class Intake {
  /** Submitted tasks whose first write has not landed: no worker is offered them until it has. */
  private readonly unstored = new Set<string>();
  /** Checks and completes a spec's gates before it is stored: --at, dependencies resolved to full ids (gates.ts). */
  resolve: (spec: TaskSpec) => void = () => undefined;

  constructor(
    private readonly tasks: Map<string, Task>,
    private readonly submissions: Submissions,
    private readonly journal: Journal,
    private readonly dispatch: Dispatch,
    private readonly stats: ClusterStats,
    private readonly defaults: Resources,
    private readonly now: () => number,
    private readonly log: Logger,
  ) {}

  /**
   * submit stores count copies of spec as pending tasks (one group when count > 1) and answers
   * once they are committed. With an idempotency key, a repeat of the request (also one racing
   * it) answers with the same tasks and creates none.
   */
  async submit(spec: TaskSpec, count = 1, key = '', origin?: TaskOrigin): Promise<Task[]> {
    validateSpec(spec);
    this.resolve(spec);
    if (!Number.isInteger(count) || count < 1 || count > MAX_COUNT) {
      throw new InvalidArgumentError('count', `must be between 1 and ${MAX_COUNT}`);
    }
    spec.resources = requestOf(spec, this.defaults);
    if (key) {
      checkIdempotencyKey(key);
      // Checked and reserved in this same turn, before any await: two requests cannot both create.
      const existing = this.submissions.get(key);
      if (existing) return this.resubmit(existing, spec, count, origin);
    }
    const groupId = count > 1 ? randomUUID() : '';
    const sub = key ? this.submissions.reserve(key, groupId, count) : undefined;
    const tasks: Task[] = [];
    for (let i = 0; i < count; i++) tasks.push(this.createTask(spec, groupId, i, count, sub, origin));
    const stored = this.storeNew(tasks, sub !== undefined);
    if (sub) sub.stored = stored.catch(() => undefined);
    await stored;
    return tasks;
  }

  /** stored: a task write landed; a new task's first one queues it for placement. */
  stored(task: Task): void {
    if (this.unstored.delete(task.id)) this.dispatch.admit(task);
  }

  /** resubmit answers a repeated key with its tasks, creating those a crash kept from being stored. */
  private async resubmit(sub: Submission, spec: TaskSpec, count: number, origin?: TaskOrigin): Promise<Task[]> {
    if (count !== sub.size) {
      throw new FailedPreconditionError(`idempotency_key ${JSON.stringify(sub.key)} was used for ${sub.size} task(s), not ${count}`);
    }
    await sub.stored;
    const known = sub.ids.map((id) => (id === undefined ? undefined : this.tasks.get(id)));
    const first = known.find((t) => t !== undefined);
    // tasks update may have changed the group's max_parallel since; the members carry the latest.
    if (first?.spec) spec.maxParallel = first.spec.maxParallel;
    // --in is relative to each run of the command: a repeat names another time for the same tasks.
    if (first?.spec) spec.notBeforeUnixMs = first.spec.notBeforeUnixMs;
    if (first?.spec && !equals(TaskSpecSchema, first.spec, memberSpec(spec, first.groupIndex, count))) {
      throw new FailedPreconditionError(`idempotency_key ${JSON.stringify(sub.key)} was used for a different task spec`);
    }
    const missing: Task[] = [];
    known.forEach((t, i) => {
      if (!t) missing.push(this.createTask(spec, sub.groupId, i, count, sub, origin));
    });
    if (missing.length > 0) {
      this.log.info({ key: sub.key, created: missing.length }, 'repeated submission: creating the tasks a crash kept from being stored');
      const stored = this.storeNew(missing, true);
      sub.stored = stored.catch(() => undefined);
      await stored;
    }
    return sub.ids.map((id) => {
      const task = this.tasks.get(id!);
      if (!task) throw new NotFoundError('task', id!);
      // Its first write failed and is being retried: it does not exist for clients yet.
      if (this.unstored.has(task.id)) throw new StoreUnavailableError(`task ${task.id} is not stored yet (the manager keeps retrying)`);
      return this.dispatch.view(task);
    });
  }

  private createTask(spec: TaskSpec, groupId: string, index: number, size: number, sub: Submission | undefined, origin?: TaskOrigin): Task {
    const now = this.now();
    const task = create(TaskSchema, {
      id: newTaskId(now),
      spec: memberSpec(spec, index, size),
      state: TaskState.PENDING,
      createdUnixMs: BigInt(now),
      groupId,
      ...(size > 1 ? { groupIndex: index, groupSize: size } : {}),
      ...(sub ? { idempotencyKey: sub.key } : {}),
      ...origin,
    });
    if (sub) sub.ids[index] = task.id;
    this.tasks.set(task.id, task);
    this.dispatch.sequence(task.id);
    this.unstored.add(task.id);
    return task;
  }

  /**
   * storeNew writes new tasks; each is queued for placement as its write lands (stored).
   * On failure a keyed task is kept and rewritten every tick (a retry with the key waits for it);
   * an unkeyed one is deleted (a failed txn may still have been applied), and the client may retry.
   */
  private async storeNew(tasks: Task[], keyed: boolean): Promise<void> {
    try {
      await Promise.all(tasks.map((t) => this.journal.writeTask(t)));
    } catch (err) {
      if (!keyed) for (const t of tasks) this.discard(t);
      throw err;
    }
    this.stats.submitted += tasks.length;
  }

  /** discard forgets a task whose submission failed; it was never offered. */
  private discard(task: Task): void {
    this.dispatch.forget(task.id);
    this.unstored.delete(task.id);
    this.tasks.delete(task.id);
    this.journal.discard(task.id);
    this.journal.delete(taskKey(task.id));
  }
}
