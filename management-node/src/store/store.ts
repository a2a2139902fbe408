// The Store is the manager's durable state: a flat key space under one
// prefix, values are protobuf binary. Two implementations (etcd, embedded
// lmdb) pass the same contract suite in test/conformance.

export interface KeyValue {
  key: string;
  value: Uint8Array;
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

export interface Store {
  /** "etcd" or "embedded", with where it lives, for status output. */
  readonly description: string;
  get(key: string): Promise<Uint8Array | undefined>;
  /** Keys starting with prefix, in key order. */
  range(prefix: string, options?: RangeOptions): Promise<KeyValue[]>;
  /** Applies all ops atomically. At most MAX_TXN_OPS ops, each key at most once. */
  commit(ops: StoreOp[]): Promise<void>;
  close(): Promise<void>;
}

/** etcd's default --max-txn-ops. */
export const MAX_TXN_OPS = 128;

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
