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

export async function* rangeAll(store: Store, prefix: string, pageSize = 1000): AsyncGenerator<KeyValue> {
  let after: string | undefined;
  for (;;) {
    const page = await store.range(prefix, after === undefined ? { limit: pageSize } : { after, limit: pageSize });
    yield* page;
    if (page.length < pageSize) return;
    after = page[page.length - 1]!.key;
  }
}
