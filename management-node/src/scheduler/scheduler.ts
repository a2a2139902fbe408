// The scheduling core the manager drives: workers and a queue in, placements
// out. Pure and synchronous (no I/O, timers or clock), so it is tested and
// benchmarked on its own.
//
// Pipeline per task, as in Nomad: feasibility (pool of connected, non-draining
// workers carrying the task's labels; FitIndex for free cpu and memory; the
// task's exclusions and other tasks' reservations) → rank (scoreWorker over
// the few best-fitting candidates) → place. Cost per placement is O(log n) in
// workers: nothing scans the fleet except explain().
//
// Queue: tasks with the same constraints and request form a class; a class
// is blocked as a whole when its head does not fit, so a pass skips a blocked
// class in one step however many tasks it holds, and stops after
// `backfillDepth` blocked classes. The first `headReserve` blocked tasks each
// reserve a worker that could hold them; later tasks may not use a reserved
// worker, so backfill cannot starve the head.
//
// Group limits (groups.ts): a group at its max_parallel takes its classes out
// of the queue until one of its live members is released.
import { SchedulerInputError } from './errors.js';
import { explainQueued, formatPlacementFailure } from './explain.js';
import { constraintList } from './feasibility.js';
import { seededRandom } from './fit-index.js';
import { GroupLimits, type GroupRef } from './groups.js';
import { poolSig, sameLabels, WorkerPools, type Pool, type WorkerRec } from './pools.js';
import { IndexedHeap, precedes } from './order.js';
import { bestWorker } from './rank.js';
import { checkId, checkResources, type Allocation, type QueuedTask, type TaskClass, type TaskGroup } from './queue-items.js';
import { createReservations } from './reservations.js';
import type {
  Placement,
  PlacementFailure,
  Resources,
  Scheduler,
  SchedulerOptions,
  Strategy,
  TaskRequest,
  Unplaceable,
  WorkerInfo,
} from './types.js';

export type * from './types.js';
export { SchedulerInputError } from './errors.js';
export type { QueuedTask, TaskClass } from './queue-items.js';


export function createScheduler(opts: SchedulerOptions = {}): Scheduler {
  const defaultStrategy: Strategy = opts.defaultStrategy ?? 'binpack';
  const headReserve = opts.headReserve ?? 1;
  const backfillDepth = opts.backfillDepth ?? 128;
  const candidates = opts.candidates ?? 8;
  const liveLoadWeight = opts.liveLoadWeight ?? 0.5;
  if (!(headReserve >= 0)) throw new SchedulerInputError('headReserve must be ≥ 0');
  if (!(backfillDepth >= 1)) throw new SchedulerInputError('backfillDepth must be ≥ 1');
  if (!(candidates >= 1)) throw new SchedulerInputError('candidates must be ≥ 1');
  if (!(liveLoadWeight >= 0)) throw new SchedulerInputError('liveLoadWeight must be ≥ 0');
  const random = seededRandom(opts.seed ?? 1);

  const reg = new WorkerPools(random);
  const workers = reg.workers;
  const classes = new Map<string, TaskClass>();
  const headOf = (c: TaskClass): QueuedTask => c.tasks.peek() as QueuedTask;
  /** Classes ordered by their head task. */
  const queue = new IndexedHeap<TaskClass>((a, b) => precedes(headOf(a), headOf(b)));
  const queuedTasks = new Map<string, QueuedTask>();
  const exclusions = new Map<string, Set<string>>();
  const allocations = new Map<string, Allocation>();
  const { unreserve, checkReservation, usable, ensureReservation, unplaceableFor } = createReservations(exclusions, candidates);
  /** A class waits out of the queue while its group is at its limit. */
  const parked = (cls: TaskClass): boolean => cls.group !== undefined && groups.full(cls.group);
  const groups: GroupLimits<TaskClass, QueuedTask> = new GroupLimits({
    closed(g) {
      for (const cls of g.classes) {
        if (cls.reservedTask !== undefined) unreserve(cls.reservedTask);
        queue.remove(cls);
      }
    },
    opened(g) {
      for (const cls of g.classes) if (cls.heapIndex < 0 && cls.tasks.size > 0) queue.push(cls);
    },
    relimited(g) {
      // A limited group's members share a class of their own; an unlimited one's share with all.
      for (const t of [...g.queued]) {
        if (t.cls.key === `#${t.id}`) continue;
        detach(t);
        t.cls = classFor(t.id, t.cls.pool, t.req, g);
        attach(t);
      }
    },
  });

  // ---- queue ----

  function classFor(id: string, pool: Pool, req: Resources, group: TaskGroup | undefined): TaskClass {
    const shape = `${pool.sig}\u0002${req.millicpu}\u0002${req.memoryBytes}`;
    const personal = exclusions.has(id);
    const limited = group !== undefined && group.limit > 0;
    const key = personal ? `#${id}` : limited ? `${group.id}\u0003${shape}` : shape;
    let cls = classes.get(key);
    if (cls === undefined) {
      const owner = personal || limited ? group : undefined;
      cls = { key, pool, tasks: new IndexedHeap<QueuedTask>(precedes), heapIndex: -1, reservedTask: undefined, group: owner };
      classes.set(key, cls);
      pool.classes++;
      owner?.classes.add(cls);
    }
    return cls;
  }

  /** attach puts t into its class (t.cls) and the class into the queue. */
  function attach(t: QueuedTask): void {
    const cls = t.cls;
    cls.tasks.push(t);
    if (cls.heapIndex >= 0) queue.update(cls);
    else if (!parked(cls)) queue.push(cls);
  }

  function detach(t: QueuedTask): void {
    unreserve(t);
    const cls = t.cls;
    cls.tasks.remove(t);
    if (cls.tasks.size === 0) {
      queue.remove(cls);
      classes.delete(cls.key);
      cls.pool.classes--;
      cls.group?.classes.delete(cls);
    } else {
      queue.update(cls);
    }
  }

  function dequeue(t: QueuedTask): void {
    detach(t);
    queuedTasks.delete(t.id);
    t.group?.queued.delete(t);
    groups.tidy(t.group);
  }

  // ---- placement ----

  /** findWorker: the best-scoring usable worker among the first `candidates` that fit (rank.ts). */
  const findWorker = (t: QueuedTask): WorkerRec | undefined => bestWorker(t, exclusions.get(t.id), candidates, liveLoadWeight, usable);


  function place(t: QueuedTask, w: WorkerRec): void {
    const { millicpu, memoryBytes } = t.req;
    // The index only returns workers with enough free resources; this guards the invariant against a bug.
    if (w.capacity.millicpu - w.used.millicpu < millicpu || w.capacity.memoryBytes - w.used.memoryBytes < memoryBytes) {
      throw new Error(`scheduler invariant broken: ${t.id} does not fit on ${w.id}`);
    }
    // Counted first: the group must not be forgotten as its last queued member leaves the queue.
    if (t.group !== undefined) groups.count(t.id, t.group);
    dequeue(t);
    w.used.millicpu += millicpu;
    w.used.memoryBytes += memoryBytes;
    allocations.set(t.id, { worker: w, resources: t.req });
    reg.refreshFree(w);
  }

  function schedule(limit = Infinity): Placement[] {
    const out: Placement[] = [];
    const blocked: TaskClass[] = [];
    let heads = 0;
    try {
      while (out.length < limit) {
        const cls = queue.peek();
        if (cls === undefined) break;
        const t = headOf(cls);
        const w = findWorker(t);
        if (w !== undefined) {
          place(t, w);
          out.push({ taskId: t.id, workerId: w.id });
          continue;
        }
        // The class is blocked for the rest of the pass: placements only take capacity away.
        queue.pop();
        blocked.push(cls);
        if (heads < headReserve) {
          if (ensureReservation(t) !== 'unplaceable') heads++;
        } else if (cls.reservedTask !== undefined) {
          unreserve(cls.reservedTask);
        }
        if (blocked.length >= backfillDepth) break;
      }
    } finally {
      // A class whose group reached its limit in this pass stays out.
      for (const cls of blocked) if (!parked(cls)) queue.push(cls);
    }
    return out;
  }

  // ---- explain ----

  function explainDetail(taskId: string): PlacementFailure | undefined {
    const t = queuedTasks.get(taskId);
    if (t === undefined) return undefined;
    return explainQueued(t, workers, exclusions.get(taskId), unplaceableFor(t), t.group !== undefined && groups.full(t.group));
  }


  // ---- the API ----

  const release = (taskId: string): void => {
    groups.uncount(taskId);
    const a = allocations.get(taskId);
    if (a === undefined) return;
    allocations.delete(taskId);
    a.worker.used.millicpu -= a.resources.millicpu;
    a.worker.used.memoryBytes -= a.resources.memoryBytes;
    reg.refreshFree(a.worker);
  };

  return {
    upsertWorker(info: WorkerInfo): void {
      const id = checkId('worker', info.id);
      const capacity = checkResources(`worker ${id} capacity`, info.capacity);
      const w = workers.get(id) ?? reg.newWorker(id);
      w.load1 = info.load1;
      w.memoryFreeBytes = info.memoryFreeBytes;
      const labels = info.labels ?? {};
      const labelsChanged = !sameLabels(w.labels, labels);
      if (
        w.connected &&
        w.draining === info.draining &&
        !labelsChanged &&
        w.capacity.millicpu === capacity.millicpu &&
        w.capacity.memoryBytes === capacity.memoryBytes
      ) {
        return; // stats only: they weigh in the score, not in the indexes
      }
      reg.leave(w);
      if (labelsChanged) {
        reg.indexLabels(w, false);
        w.labels = { ...labels };
        reg.indexLabels(w, true);
      }
      w.capacity = capacity;
      w.connected = true;
      w.draining = info.draining;
      reg.join(w);
      checkReservation(w);
    },

    removeWorker(id: string): void {
      const w = workers.get(id);
      if (w === undefined || !w.connected) return;
      reg.leave(w);
      w.connected = false;
      checkReservation(w);
    },

    forgetWorker(id: string): void {
      const w = workers.get(id);
      if (w === undefined) return;
      reg.leave(w);
      if (w.reservedBy !== undefined) unreserve(w.reservedBy);
      reg.indexLabels(w, false);
      for (const [taskId, a] of allocations) {
        if (a.worker !== w) continue;
        allocations.delete(taskId);
        groups.uncount(taskId);
      }
      workers.delete(id);
    },

    setDraining(id: string, draining: boolean): void {
      const w = workers.get(id);
      if (w === undefined || w.draining === draining) return;
      reg.leave(w);
      w.draining = draining;
      reg.join(w);
      checkReservation(w);
    },

    enqueue(req: TaskRequest): void {
      const id = checkId('task', req.id);
      const resources = checkResources(`task ${id} resources`, req.resources);
      if (!Number.isFinite(req.priority) || !Number.isFinite(req.seq)) {
        throw new SchedulerInputError(`task ${id}: priority and seq must be finite numbers`);
      }
      const strategy = req.strategy ?? defaultStrategy;
      if (strategy !== 'binpack' && strategy !== 'spread') throw new SchedulerInputError(`task ${id}: unknown strategy ${String(strategy)}`);
      const held = allocations.get(id);
      if (held !== undefined) throw new SchedulerInputError(`task ${id} is allocated on worker ${held.worker.id}: release it before queueing it again`);
      const old = queuedTasks.get(id);
      if (old !== undefined) dequeue(old);
      // Queued again, it is not live: a hold after a restart is over (see hold).
      groups.uncount(id);
      const group = groups.of(req.group);
      const constraints = constraintList(req.constraints ?? {});
      const pool = constraints.length === 0 ? reg.basePool : reg.getPool(poolSig(constraints), constraints);
      const t: QueuedTask = {
        id,
        priority: req.priority,
        seq: req.seq,
        strategy,
        req: resources,
        constraints,
        cls: classFor(id, pool, resources, group),
        reserved: undefined,
        heapIndex: -1,
        group,
      };
      queuedTasks.set(id, t);
      group?.queued.add(t);
      attach(t);
    },

    remove(taskId: string): void {
      const t = queuedTasks.get(taskId);
      if (t !== undefined) dequeue(t);
      exclusions.delete(taskId);
      release(taskId);
    },

    excludedFrom(taskId: string): ReadonlySet<string> {
      return exclusions.get(taskId) ?? new Set();
    },

    exclude(taskId: string, workerId: string): void {
      let set = exclusions.get(taskId);
      if (set === undefined) exclusions.set(taskId, (set = new Set()));
      set.add(workerId);
      const t = queuedTasks.get(taskId);
      if (t === undefined) return;
      if (t.reserved?.id === workerId) unreserve(t);
      // Exclusions make feasibility personal: the task leaves its shared class.
      if (t.cls.key !== `#${taskId}`) {
        detach(t);
        t.cls = classFor(taskId, t.cls.pool, t.req, t.group);
        attach(t);
      }
    },

    allocate(taskId: string, workerId: string, r: Resources, group?: GroupRef): void {
      checkId('task', taskId);
      checkId('worker', workerId);
      const resources = checkResources(`task ${taskId} allocation`, r);
      const t = queuedTasks.get(taskId);
      if (t !== undefined) dequeue(t);
      release(taskId);
      // A recovered task may report in before its worker does.
      const w = workers.get(workerId) ?? reg.newWorker(workerId);
      w.used.millicpu += resources.millicpu;
      w.used.memoryBytes += resources.memoryBytes;
      allocations.set(taskId, { worker: w, resources });
      reg.refreshFree(w);
      const g = groups.of(group);
      if (g !== undefined) groups.count(taskId, g);
    },

    hold(taskId: string, group: GroupRef): void {
      checkId('task', taskId);
      const g = groups.of(group);
      if (g !== undefined && !queuedTasks.has(taskId) && !allocations.has(taskId)) groups.count(taskId, g);
    },

    setGroupLimit(groupId: string, maxParallel: number): void {
      const g = groups.get(groupId);
      if (g !== undefined) groups.of({ id: groupId, maxParallel });
    },

    groupLive(groupId: string): number {
      return groups.get(groupId)?.live.size ?? 0;
    },

    release,
    schedule,
    explainDetail,

    explain(taskId: string): string | undefined {
      const f = explainDetail(taskId);
      if (f?.groupLimit !== undefined) return `group at its limit: ${f.groupLimit.live} of ${f.groupLimit.limit} running`;
      return f === undefined || f.fit > 0 ? undefined : formatPlacementFailure(f);
    },

    unplaceable(taskId: string): Unplaceable | undefined {
      const t = queuedTasks.get(taskId);
      return t === undefined ? undefined : unplaceableFor(t);
    },

    queued: () => queuedTasks.size,
    isQueued: (taskId: string) => queuedTasks.has(taskId),

    used(workerId: string): Resources | undefined {
      const w = workers.get(workerId);
      return w === undefined ? undefined : { millicpu: w.used.millicpu, memoryBytes: w.used.memoryBytes };
    },

    allocation(taskId: string): { workerId: string; resources: Resources } | undefined {
      const a = allocations.get(taskId);
      return a === undefined ? undefined : { workerId: a.worker.id, resources: { ...a.resources } };
    },
  };
}
