// Operators' changes to pending tasks: hold and release (HoldTask), and priority,
// resources and constraints (UpdateTask). Only a pending task that no worker may be
// running changes: not one with an offer out (the worker may be starting it with the
// spec it was sent), nor one held since a restart until the workers have reported
// (it may be running where the store does not know). Those are refused; the operator
// tries again a moment later. The change goes through the gates (gates.ts edit): the
// task leaves the queue, the change is stored, then it is queued again as changed.
import { clone } from '@bufbuild/protobuf';
import { TaskSpecSchema, TaskState, type Resources as SpecResources, type Task } from '../../proto/gen/schedapi/v1/types_pb.js';
import { FailedPreconditionError, InvalidArgumentError } from '../../common/errors.js';
import type { Dispatch } from './dispatch.js';
import type { Gates } from './gates.js';
import type { Journal } from './journal.js';
import { SHORT_ID } from './id-resolver.js';
import type { OfferLedger } from './offer-ledger.js';
import type { Recovery } from './recovery.js';
import { validateSpec } from './task-rules.js';

/** What UpdateTask may change of a pending task; unset fields stay. */
export interface PendingChange {
  priority?: number | undefined;
  /** A zero field keeps the current request. */
  resources?: SpecResources | undefined;
  /** Replaces every constraint when set. */
  constraints?: Record<string, string> | undefined;
}

export interface IdError {
  id: string;
  message: string;
}

const short = (id: string): string => id.slice(-SHORT_ID);

export class TaskEdits {
  constructor(
    private readonly gates: Gates,
    private readonly offers: OfferLedger,
    private readonly recovery: Recovery,
  ) {}

  /**
   * hold holds (or releases) pending tasks; idempotent. Each task that cannot is reported with
   * why, the others change. Resolves once the changes are stored.
   */
  async hold(tasks: Task[], hold: boolean): Promise<{ tasks: Task[]; errors: IdError[] }> {
    const done: Task[] = [];
    const errors: IdError[] = [];
    const writes: Array<Promise<void>> = [];
    for (const task of tasks) {
      const problem = task.held === hold && task.state === TaskState.PENDING ? undefined : this.unchangeable(task, hold ? 'held' : 'released');
      if (problem) {
        errors.push({ id: task.id, message: problem });
        continue;
      }
      done.push(task);
      if (task.held !== hold) writes.push(this.gates.edit(task, () => (task.held = hold)));
    }
    await Promise.all(writes);
    return { tasks: done, errors };
  }

  /** update changes a pending task's priority, resources or constraints; resolves once stored. */
  async update(task: Task, change: PendingChange): Promise<void> {
    const problem = this.unchangeable(task, 'changed');
    if (problem) throw new FailedPreconditionError(problem);
    const spec = clone(TaskSpecSchema, task.spec!);
    if (change.priority !== undefined) spec.priority = change.priority;
    const r = change.resources;
    if (r) {
      if (r.millicpu < 0n) throw new InvalidArgumentError('resources.millicpu', 'must not be negative');
      if (r.memoryBytes < 0n) throw new InvalidArgumentError('resources.memory_bytes', 'must not be negative');
      spec.resources = { ...spec.resources!, millicpu: r.millicpu || spec.resources!.millicpu, memoryBytes: r.memoryBytes || spec.resources!.memoryBytes };
    }
    if (change.constraints) spec.constraints = { ...change.constraints };
    validateSpec(spec);
    await this.gates.edit(task, () => (task.spec = spec));
  }

  /** unchangeable says why the task may not be held, released or changed now, or undefined. */
  private unchangeable(task: Task, verb: string): string | undefined {
    const name = `task ${short(task.id)}`;
    if (task.state !== TaskState.PENDING) {
      return `${name} is ${TaskState[task.state].toLowerCase()}: only a pending task can be ${verb}`;
    }
    const offer = this.offers.get(task.id);
    if (offer) return `${name} is offered to worker ${offer.workerId}, waiting for its answer: try again in a moment`;
    // Held since a restart: it may be running on a worker that has not reported yet. A task whose
    // hold the store holds was offered to nobody since, so it may be released.
    if (this.recovery.isHeld(task.id) && !task.held) {
      return `${name}: the manager restarted and waits for the workers to report what they run: try again in a few seconds`;
    }
    return undefined;
  }
}

/**
 * setGroupMaxParallel changes the max_parallel of a task's whole group (tasks update); resolves
 * once every member is stored with it. Live members run on when it is lowered; a raised one lets
 * waiting members go at once.
 */
export async function setGroupMaxParallel(
  task: Task,
  maxParallel: number,
  tasks: Iterable<Task>,
  journal: Pick<Journal, 'writeTask'>,
  dispatch: Pick<Dispatch, 'setGroupLimit'>,
): Promise<Task> {
  if (!task.groupId) throw new FailedPreconditionError(`task ${task.id} is not in a group (tasks run --count): max_parallel applies to groups`);
  const members = [...tasks].filter((t) => t.groupId === task.groupId);
  for (const t of members) if (t.spec) t.spec.maxParallel = maxParallel;
  try {
    await Promise.all(members.map((t) => journal.writeTask(t)));
  } finally {
    // The records in memory carry it either way (a failed write is retried on the tick).
    dispatch.setGroupLimit(task.groupId, maxParallel);
  }
  return task;
}
