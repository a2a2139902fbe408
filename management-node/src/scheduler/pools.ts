// The scheduler's view of the workers: each worker's record, the label index,
// and the pools (the eligible workers carrying a set of labels, indexed by free
// resources and by capacity) that feasibility queries. Kept up to date as workers
// come, go, drain, change labels and have resources placed on them.
import { missingLabel } from './feasibility.js';
import { FitIndex, type FitNode } from './fit-index.js';
import type { QueuedTask } from './scheduler.js';
import type { Resources } from './types.js';

export interface WorkerRec {
  readonly id: string;
  readonly ord: number;
  capacity: Resources;
  /** Mutated in place by placements and releases. */
  readonly used: Resources;
  labels: Record<string, string>;
  connected: boolean;
  draining: boolean;
  load1: number | undefined;
  memoryFreeBytes: number | undefined;
  /** The pools the worker is in; empty unless connected and not draining. */
  memberships: Membership[];
  reservedBy: QueuedTask | undefined;
}

export interface Membership {
  readonly pool: Pool;
  readonly free: FitNode<WorkerRec>;
  readonly cap: FitNode<WorkerRec>;
}

/** The eligible workers that carry a set of labels, indexed by free resources and by capacity. */
export interface Pool {
  readonly sig: string;
  readonly constraints: ReadonlyArray<readonly [string, string]>;
  readonly free: FitIndex<WorkerRec>;
  readonly cap: FitIndex<WorkerRec>;
  classes: number;
}

/** Pools without queued tasks are kept (rebuilding one costs a scan) until there are this many. */
const MAX_POOLS = 64;

export function sameLabels(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (!Object.hasOwn(b, k) || a[k] !== b[k]) return false;
  return true;
}

const labelKey = (k: string, v: string): string => `${k}\u0000${v}`;
export const poolSig = (constraints: ReadonlyArray<readonly [string, string]>): string =>
  constraints.map(([k, v]) => labelKey(k, v)).join('\u0001');

/** Connected and not draining: a worker that may be offered tasks. */
export const eligible = (w: WorkerRec): boolean => w.connected && !w.draining;

export class WorkerPools {
  readonly workers = new Map<string, WorkerRec>();
  /** k=v → workers carrying it, connected or not. */
  private readonly labelIndex = new Map<string, Set<WorkerRec>>();
  private readonly pools = new Map<string, Pool>();
  private nextOrd = 0;
  /** The pool of every eligible worker (no labels asked). */
  readonly basePool: Pool;

  constructor(private readonly random: () => number) {
    this.basePool = this.getPool('', []);
  }

  indexLabels(w: WorkerRec, add: boolean): void {
    for (const [k, v] of Object.entries(w.labels)) {
      const key = labelKey(k, v);
      let set = this.labelIndex.get(key);
      if (add) {
        if (set === undefined) this.labelIndex.set(key, (set = new Set()));
        set.add(w);
      } else if (set !== undefined) {
        set.delete(w);
        if (set.size === 0) this.labelIndex.delete(key);
      }
    }
  }

  private addMember(pool: Pool, w: WorkerRec): void {
    const free = pool.free.node(w, w.ord, w.capacity.memoryBytes - w.used.memoryBytes, w.capacity.millicpu - w.used.millicpu);
    const cap = pool.cap.node(w, w.ord, w.capacity.memoryBytes, w.capacity.millicpu);
    pool.free.insert(free);
    pool.cap.insert(cap);
    w.memberships.push({ pool, free, cap });
  }

  join(w: WorkerRec): void {
    if (!eligible(w)) return;
    for (const pool of this.pools.values()) {
      if (missingLabel(w.labels, pool.constraints) === undefined) this.addMember(pool, w);
    }
  }

  leave(w: WorkerRec): void {
    for (const m of w.memberships) {
      m.pool.free.remove(m.free);
      m.pool.cap.remove(m.cap);
    }
    w.memberships = [];
  }

  refreshFree(w: WorkerRec): void {
    const mem = w.capacity.memoryBytes - w.used.memoryBytes;
    const cpu = w.capacity.millicpu - w.used.millicpu;
    for (const m of w.memberships) m.pool.free.rekey(m.free, mem, cpu);
  }

  private evictIdlePools(): void {
    for (const pool of [...this.pools.values()]) {
      if (pool.classes > 0 || pool.sig === '') continue;
      pool.cap.forEach((n) => {
        n.item.memberships = n.item.memberships.filter((m) => m.pool !== pool);
      });
      this.pools.delete(pool.sig);
    }
  }

  getPool(sig: string, constraints: ReadonlyArray<readonly [string, string]>): Pool {
    const existing = this.pools.get(sig);
    if (existing !== undefined) return existing;
    if (this.pools.size >= MAX_POOLS) this.evictIdlePools();
    const pool: Pool = { sig, constraints, free: new FitIndex(this.random), cap: new FitIndex(this.random), classes: 0 };
    this.pools.set(sig, pool);
    // Only workers carrying the rarest required label can match.
    let rarest: Set<WorkerRec> | undefined;
    for (const [k, v] of constraints) {
      const set = this.labelIndex.get(labelKey(k, v)) ?? new Set<WorkerRec>();
      if (rarest === undefined || set.size < rarest.size) rarest = set;
    }
    const members: Iterable<WorkerRec> = rarest ?? this.workers.values();
    for (const w of members) {
      if (eligible(w) && missingLabel(w.labels, constraints) === undefined) this.addMember(pool, w);
    }
    return pool;
  }

  newWorker(id: string): WorkerRec {
    const w: WorkerRec = {
      id,
      ord: this.nextOrd++,
      capacity: { millicpu: 0, memoryBytes: 0 },
      used: { millicpu: 0, memoryBytes: 0 },
      labels: {},
      connected: false,
      draining: false,
      load1: undefined,
      memoryFreeBytes: undefined,
      memberships: [],
      reservedBy: undefined,
    };
    this.workers.set(id, w);
    return w;
  }
}
