// Group limits (tasks run --count N --max-parallel K, Slurm's %K): at most K
// members of a group are live at once. A member is live from its placement
// (an offer) until its allocation is released (its attempt ended, or the
// worker confirmed it never ran it), and also while the manager holds it after
// a restart, when it may be running unseen. The counts are rebuilt from what
// the manager tells the core on start (allocate, hold), never kept elsewhere.
//
// Members of a limited group queue in classes of their own (scheduler.ts), so
// a group at its limit leaves the queue as a whole and costs a pass nothing
// until one of its members ends.
import { SchedulerInputError } from './errors.js';

/** A task's group as the caller names it: the group id and its max_parallel (0 = no limit). */
export interface GroupRef {
  id: string;
  maxParallel: number;
}

export interface Group<C, T> {
  readonly id: string;
  limit: number;
  /** Live members: placed or allocated, or held after a restart. */
  readonly live: Set<string>;
  /** Queued members. */
  readonly queued: Set<T>;
  /** The queue classes of its members: the group's own (limited groups) and personal ones. */
  readonly classes: Set<C>;
}

export interface GroupHooks<C, T> {
  /** The group reached its limit: its classes leave the queue. */
  closed(g: Group<C, T>): void;
  /** The group is below its limit: its classes go back to the queue. */
  opened(g: Group<C, T>): void;
  /** The limit changed between none and some: queued members change classes. */
  relimited(g: Group<C, T>): void;
}

/** Largest max_parallel taken (a group holds at most 10,000 tasks; uint32 on the wire). */
const MAX_LIMIT = 0xffffffff;

export class GroupLimits<C, T> {
  private readonly groups = new Map<string, Group<C, T>>();
  /** The group each live task counts in. */
  private readonly liveIn = new Map<string, Group<C, T>>();

  constructor(private readonly hooks: GroupHooks<C, T>) {}

  /** of returns the named group, created on first use; a different max_parallel than it has becomes its limit. */
  of(ref: GroupRef | undefined): Group<C, T> | undefined {
    if (ref === undefined || ref.id === '') return undefined;
    if (typeof ref.id !== 'string') throw new SchedulerInputError('group: id must be a string');
    const limit = ref.maxParallel;
    if (!Number.isInteger(limit) || limit < 0 || limit > MAX_LIMIT) {
      throw new SchedulerInputError(`group ${ref.id}: maxParallel must be an integer between 0 and ${MAX_LIMIT}`);
    }
    let g = this.groups.get(ref.id);
    if (g === undefined) {
      g = { id: ref.id, limit, live: new Set(), queued: new Set(), classes: new Set() };
      this.groups.set(ref.id, g);
    } else if (g.limit !== limit) {
      this.setLimit(g, limit);
    }
    return g;
  }

  get(id: string): Group<C, T> | undefined {
    return this.groups.get(id);
  }

  full(g: Group<C, T>): boolean {
    return g.limit > 0 && g.live.size >= g.limit;
  }

  /** setLimit changes a group's limit: a raised one lets members go at once, a lowered one stops new placements (live members run on). */
  setLimit(g: Group<C, T>, limit: number): void {
    const was = g.limit;
    g.limit = limit;
    if (was > 0 !== limit > 0) this.hooks.relimited(g);
    if (this.full(g)) this.hooks.closed(g);
    else this.hooks.opened(g);
  }

  /** count makes a task a live member of g. */
  count(taskId: string, g: Group<C, T>): void {
    const old = this.liveIn.get(taskId);
    if (old === g) return;
    if (old !== undefined) this.uncount(taskId);
    g.live.add(taskId);
    this.liveIn.set(taskId, g);
    if (this.full(g)) this.hooks.closed(g);
  }

  /** uncount: the task is no longer live (its attempt ended, it was taken back or forgotten). */
  uncount(taskId: string): void {
    const g = this.liveIn.get(taskId);
    if (g === undefined) return;
    this.liveIn.delete(taskId);
    g.live.delete(taskId);
    if (!this.full(g)) this.hooks.opened(g);
    this.tidy(g);
  }

  /** tidy forgets a group with nothing live or queued (it is made again from the next member named). */
  tidy(g: Group<C, T> | undefined): void {
    if (g !== undefined && g.live.size === 0 && g.queued.size === 0 && g.classes.size === 0) this.groups.delete(g.id);
  }

  /** How many groups are known (bounded by the live and queued tasks). */
  get size(): number {
    return this.groups.size;
  }
}
