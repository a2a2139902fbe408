// The scheduling core's vocabulary. Plain data in, plain data out: the
// manager translates protobuf messages into these at its edge.
import type { GroupRef } from './groups.js';

export type { GroupRef } from './groups.js';

export type Strategy = 'binpack' | 'spread';

/** cpu in thousandths of a core, memory in bytes; both non-negative integers. */
export interface Resources {
  millicpu: number;
  memoryBytes: number;
}

export interface WorkerInfo {
  id: string;
  capacity: Resources;
  labels: Record<string, string>;
  draining: boolean;
  /** 1-minute load average from the worker's last stats (absolute, not per core). */
  load1?: number | undefined;
  /** Free memory the worker's OS reports; lower means more memory pressure. */
  memoryFreeBytes?: number | undefined;
}

export interface TaskRequest {
  id: string;
  resources: Resources;
  /** Labels a worker must carry, every one of them (k=v). */
  constraints: Record<string, string>;
  /** Higher runs first. */
  priority: number;
  /** Submission order: unique and increasing; earlier runs first within a priority. */
  seq: number;
  /** Defaults to the scheduler's defaultStrategy. */
  strategy?: Strategy | undefined;
  /** The task's group and its max_parallel: at most that many members are live at once (groups.ts). */
  group?: GroupRef | undefined;
}

export interface Placement {
  taskId: string;
  workerId: string;
}

/**
 * Why a worker cannot take a task, in filter order: a worker is counted once,
 * by the first step that rejects it.
 */
export type RejectReason =
  | 'disconnected'
  | 'draining'
  | 'excluded'
  | `missing label ${string}`
  | `user ${string} not allowed`
  | 'insufficient cpu'
  | 'insufficient memory'
  | 'reserved for an earlier task';

/**
 * Whether a queued task can ever be placed on the current fleet of connected,
 * non-draining workers, however busy they are: false when some worker could
 * hold it; 'no-fit' when none has the labels and capacity; 'excluded' when
 * every worker that could hold it has been excluded (they all refused or
 * ignored the offer). Either may change when a worker joins or is resized.
 */
export type Unplaceable = false | 'no-fit' | 'excluded';

/** Nomad-style placement failure summary of one queued task. */
export interface PlacementFailure {
  taskId: string;
  /** Workers considered: every registered worker, connected or not. */
  workers: number;
  /** Workers that would take the task now. */
  fit: number;
  /** Most common reason first, then filter order. */
  rejections: Array<{ reason: RejectReason; workers: number }>;
  /** Whether the current fleet can ever run the task (see Unplaceable). */
  unplaceable: Unplaceable;
  /** The worker held back for this task (head-of-queue reservation), if any. */
  reservedWorkerId?: string;
  /** Set when the task's group is at its max_parallel: its live members and the limit. */
  groupLimit?: { live: number; limit: number };
}

export interface SchedulerOptions {
  /** Strategy of tasks that name none. Default 'binpack'. */
  defaultStrategy?: Strategy;
  /**
   * How many blocked tasks at the front of the queue reserve a worker each, so
   * that backfilled smaller tasks cannot take the capacity they wait for.
   * Default 1 (EASY backfill); 0 disables reservations (greedy backfill, the
   * head may starve).
   */
  headReserve?: number;
  /**
   * A schedule() pass stops after this many blocked task shapes. Tasks with
   * the same constraints and request share a shape and are blocked together,
   * so this bounds the cost of a pass, not how deep into the queue it reaches.
   * Default 128.
   */
  backfillDepth?: number;
  /** Feasible workers scored per placement (best-fit neighbours in the index). Default 8. */
  candidates?: number;
  /** Weight of live load (load1 per core, memory pressure) against the fit score. Default 0.5. */
  liveLoadWeight?: number;
  /** Seed of the index's tie-breaking randomness; the same seed and calls give the same placements. */
  seed?: number;
}

/**
 * A stateful, pure placement engine: no I/O, no timers, no clock. Every method
 * is synchronous and costs O(log workers) per task touched, except explain()
 * which looks at every worker.
 */
export interface Scheduler {
  /** Connects a worker or updates its capacity, labels, draining flag or stats. */
  upsertWorker(w: WorkerInfo): void;
  /** Disconnects a worker: no new placements; allocations on it stay until release(). */
  removeWorker(id: string): void;
  /** Drops a worker from the registry (and from explain counts) together with any allocations still on it. */
  forgetWorker(id: string): void;
  setDraining(id: string, draining: boolean): void;

  /** Queues a task (or replaces its queued request). A task holding an allocation must be released first. */
  enqueue(t: TaskRequest): void;
  /** Forgets a task entirely: queue entry, exclusions, reservation and allocation. */
  remove(taskId: string): void;
  /** Never offer the task to this worker again (it refused or ignored an offer). */
  exclude(taskId: string, workerId: string): void;
  /** The workers a task may no longer be offered to. */
  excludedFrom(taskId: string): ReadonlySet<string>;
  /** Records a task already running on a worker (recovery, reconnect); dequeues it if queued. It counts in its group until released. */
  allocate(taskId: string, workerId: string, r: Resources, group?: GroupRef): void;
  /** Frees the task's allocation (finished, lost, refused); exclusions stay for a retry. The task no longer counts in its group. */
  release(taskId: string): void;
  /**
   * Counts a task that is neither queued nor allocated as a live member of its group: one held
   * after a restart, which may be running unseen. Until it is enqueued, allocated, released or removed.
   */
  hold(taskId: string, group: GroupRef): void;
  /** Sets the max_parallel of a known group (tasks update); 0 = no limit. A group not known yet takes it from its members' requests. */
  setGroupLimit(groupId: string, maxParallel: number): void;
  /** Live members of a group (placed, allocated or held). */
  groupLive(groupId: string): number;

  /**
   * Places what fits now, in queue order with backfill, at most `limit` tasks.
   * Each placement is allocated at once and stays allocated until release().
   */
  schedule(limit?: number): Placement[];

  /** Why a queued task is not placed, e.g. "0/3 workers fit: 2 insufficient memory, 1 missing label gpu=true"; undefined if it fits somewhere now or is not queued. O(workers). */
  explain(taskId: string): string | undefined;
  /** The structured summary behind explain(), for any queued task (fit may be > 0). O(workers). */
  explainDetail(taskId: string): PlacementFailure | undefined;
  /** Whether the queued task can ever be placed on the current fleet; undefined if not queued. O(log workers + its exclusions). */
  unplaceable(taskId: string): Unplaceable | undefined;

  /** Number of queued tasks. */
  queued(): number;
  isQueued(taskId: string): boolean;
  /** Resources allocated on a worker, undefined for an unknown worker. */
  used(workerId: string): Resources | undefined;
  /** Where a task is allocated, undefined if it is not. */
  allocation(taskId: string): { workerId: string; resources: Resources } | undefined;
}
