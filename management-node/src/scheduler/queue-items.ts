// What the scheduler's queue holds (scheduler.ts): tasks, their classes and allocations, and
// the checks on what the manager hands in.
import { SchedulerInputError } from './errors.js';
import type { Group } from './groups.js';
import type { HeapItem, IndexedHeap } from './order.js';
import type { Pool, WorkerRec } from './pools.js';
import type { Resources, Strategy } from './types.js';

/** Queued tasks that are interchangeable for feasibility: same pool and request, no exclusions. */
export interface TaskClass extends HeapItem {
  readonly key: string;
  readonly pool: Pool;
  readonly tasks: IndexedHeap<QueuedTask>;
  /** At most one task of a class holds a reservation. */
  reservedTask: QueuedTask | undefined;
  /** The group whose limit holds the class back: a limited group's own class, or a member's personal one. */
  readonly group: TaskGroup | undefined;
}

export type TaskGroup = Group<TaskClass, QueuedTask>;

export interface QueuedTask extends HeapItem {
  readonly id: string;
  readonly priority: number;
  readonly seq: number;
  readonly strategy: Strategy;
  readonly req: Resources;
  readonly constraints: ReadonlyArray<readonly [string, string]>;
  cls: TaskClass;
  reserved: WorkerRec | undefined;
  readonly group: TaskGroup | undefined;
}

export interface Allocation {
  readonly worker: WorkerRec;
  readonly resources: Resources;
}

export function checkResources(what: string, r: Resources | undefined): Resources {
  if (
    r === undefined ||
    typeof r.millicpu !== 'number' ||
    typeof r.memoryBytes !== 'number' ||
    !Number.isFinite(r.millicpu) ||
    !Number.isFinite(r.memoryBytes) ||
    r.millicpu < 0 ||
    r.memoryBytes < 0
  ) {
    throw new SchedulerInputError(`${what}: millicpu and memoryBytes must be finite and non-negative`);
  }
  return { millicpu: r.millicpu, memoryBytes: r.memoryBytes };
}

export function checkId(what: string, id: unknown): string {
  if (typeof id !== 'string' || id === '') throw new SchedulerInputError(`${what}: id must be a non-empty string`);
  return id;
}
