// The Store is the manager's durable state: a flat key space under one
// prefix, values are protobuf binary. Two implementations (etcd, embedded
// lmdb) pass the same contract suite in test/conformance.

export interface KeyValue {
  key: string;
  value: Uint8Array;
  /**
   * The store revision of the txn that last wrote this key (etcd's
   * mod_revision). Always > 0n for a stored key; revisions are store-wide,
   * so they grow across commits but are not consecutive for one prefix.
   */
  modRevision: bigint;
}

/** A put when value is a Uint8Array, a delete when value is null. */
export interface StoreOp {
  key: string;
  value: Uint8Array | null;
}

export interface RangeOptions {
  /** Only keys that sort strictly after this one (paging). */
  after?: string;
  /** At most this many keys; default 1000. */
  limit?: number;
}

/** Holds when key's current modRevision equals modRevision; 0n means "key does not exist". */
export interface TxnCompare {
  key: string;
  modRevision: bigint;
}

export interface TxnRequest {
  /** All must hold for ops to be applied. At most MAX_TXN_OPS. */
  compare: TxnCompare[];
  /** Applied atomically if every compare holds. Same rules as commit(). */
  ops: StoreOp[];
}

export interface TxnResult {
  /** True when every compare held and the ops were applied. */
  succeeded: boolean;
  /**
   * The store revision after the txn: the ops' modRevision when it succeeded
   * and changed something, otherwise the current revision.
   */
  revision: bigint;
}

export interface WatchEvent {
  type: 'put' | 'delete';
  key: string;
  /** The new value; only on put. */
  value?: Uint8Array;
  /** Revision of the txn that made the change (for a delete: the deleting txn's). */
  modRevision: bigint;
}

/** Stops a watch; no events are delivered once it resolves. */
export type CancelWatch = () => Promise<void>;

export interface Lease {
  /** etcd: the lease ID in decimal; embedded: an opaque id. */
  readonly id: string;
  /**
   * Puts key attached to this lease (replacing any earlier lease of the key):
   * the key is deleted when the lease is revoked or expires. A later plain
   * put or delete of the key detaches it. Rejects with LeaseRevokedError once
   * the lease is revoked or lost.
   */
  put(key: string, value: Uint8Array): Promise<void>;
  /**
   * Puts key attached to this lease only if the key does not exist (one
   * transaction): resolves with the store revision that created it, or
   * undefined when the key exists (whoever holds it). The basis of leader
   * election: the key lives exactly as long as the lease.
   */
  create(key: string, value: Uint8Array): Promise<bigint | undefined>;
  /** Ends the lease and deletes its keys (as one change watchers see). Idempotent. */
  revoke(): Promise<void>;
  /**
   * Resolves with the reason if the lease ends other than by revoke() or
   * close(): etcd could not be reached to keep it alive within its TTL, or
   * etcd reported it expired. Its keys are then gone or about to be. Never
   * settles for embedded leases, which live as long as the store is open.
   */
  readonly lost: Promise<Error>;
  /**
   * Until when (performance.now() milliseconds) the lease is certainly alive:
   * its last renewal was sent at that time minus its TTL. Past it, the lease
   * may have expired without this process hearing of it (it was frozen, or
   * cut off). Infinity for embedded leases.
   */
  aliveUntil(): number;
}

export interface Store {
  /** "etcd" or "embedded", with where it lives, for status output. */
  readonly description: string;
  get(key: string): Promise<Uint8Array | undefined>;
  /** get with the key's modRevision. */
  getWithRevision(key: string): Promise<KeyValue | undefined>;
  /** Keys starting with prefix, in key order. */
  range(prefix: string, options?: RangeOptions): Promise<KeyValue[]>;
  /**
   * Applies all ops atomically. At most MAX_TXN_OPS ops, each key at most once.
   * Resolves with the store revision after it, as TxnResult.revision: the ops'
   * modRevision when they changed something (the revision of every event they
   * caused), otherwise the current revision.
   */
  commit(ops: StoreOp[]): Promise<bigint>;
  /**
   * Applies ops atomically if every compare holds, else applies nothing and
   * resolves with succeeded=false. Compares and ops are checked like commit's.
   */
  txn(request: TxnRequest): Promise<TxnResult>;
  /**
   * Calls onEvent for every change to a key starting with prefix committed
   * after the returned promise resolves, in revision order (one txn's changes
   * in op order; separate watches are not ordered against each other). A
   * delete of a missing key is no change and no event. onEvent must not throw (a throw is rethrown asynchronously,
   * as an uncaught exception). A watch survives etcd restarts, resuming where
   * it left off; if etcd ends it for good (e.g. the revision to resume from was
   * compacted away), onError is called once and no events follow.
   * Resolves to a cancel function; close() cancels every watch.
   */
  watch(prefix: string, onEvent: (event: WatchEvent) => void, onError?: (err: Error) => void): Promise<CancelWatch>;
  /**
   * Grants a lease kept alive automatically until revoked or the store is
   * closed (close() revokes every lease, deleting its keys). etcd counts the
   * TTL in whole seconds (rounded up) and may raise it to its minimum (about
   * 2 s at default settings). Embedded leases cannot expire while the process
   * lives (one process, so no keep-alive to miss): their keys go on revoke(),
   * close(), or, after a crash, when the store is next opened.
   */
  grantLease(ttlMs: number): Promise<Lease>;
  /** Revokes every lease, cancels every watch, then releases the connection or files. */
  close(): Promise<void>;
}

/** etcd's default --max-txn-ops. */
export const MAX_TXN_OPS = 128;

/** Lease.put on a lease that was revoked, expired or lost. */
export class LeaseRevokedError extends Error {
  constructor(id: string) {
    super(`lease ${id} has been revoked or has expired`);
    this.name = 'LeaseRevokedError';
  }
}

/**
 * checkOps enforces commit's contract the same way for every backend: at most
 * MAX_TXN_OPS ops, each key once. Breaking it is a programming error, not an
 * unavailable store, so it throws a plain Error before anything is sent.
 */
export function checkOps(ops: readonly StoreOp[]): void {
  if (ops.length > MAX_TXN_OPS) throw new Error(`store commit: ${ops.length} ops, at most ${MAX_TXN_OPS} allowed`);
  if (ops.length < 2) return;
  const seen = new Set<string>();
  for (const op of ops) {
    if (seen.has(op.key)) throw new Error(`store commit: key ${JSON.stringify(op.key)} appears twice`);
    seen.add(op.key);
  }
}

/** checkTxn is checkOps for txn(): also at most MAX_TXN_OPS compares (etcd's limit), none negative. */
export function checkTxn(request: TxnRequest): void {
  checkOps(request.ops);
  if (request.compare.length > MAX_TXN_OPS) {
    throw new Error(`store txn: ${request.compare.length} compares, at most ${MAX_TXN_OPS} allowed`);
  }
  for (const c of request.compare) {
    if (c.modRevision < 0n) throw new Error(`store txn: negative modRevision for key ${JSON.stringify(c.key)}`);
  }
}

/** leaseTtlSeconds converts grantLease's TTL to etcd's whole seconds, at least 1. */
export function leaseTtlSeconds(ttlMs: number): number {
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new Error(`store lease: TTL must be a positive number of ms, got ${ttlMs}`);
  return Math.max(1, Math.ceil(ttlMs / 1000));
}

/** compareKeys orders keys as both backends do: by their UTF-8 bytes. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

export async function* rangeAll(store: Store, prefix: string, pageSize = 1000): AsyncGenerator<KeyValue> {
  let after: string | undefined;
  for (;;) {
    const page = await store.range(prefix, after === undefined ? { limit: pageSize } : { after, limit: pageSize });
    yield* page;
    if (page.length < pageSize) return;
    after = page[page.length - 1]!.key;
  }
}
