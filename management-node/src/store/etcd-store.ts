import { Etcd3, type IOptions } from 'etcd3';
import { StoreUnavailableError } from '../../../common/errors.js';
import { checkOps, compareKeys, type KeyValue, type RangeOptions, type Store, type StoreOp } from './store.js';

/**
 * A pass-through fault policy. etcd3's defaults retry every call three times
 * and put each host behind a circuit breaker that, after three failures,
 * refuses every call for 5 s, even after etcd is back. The store's callers
 * (group commit, startup) own the retry policy, so calls fail fast instead.
 */
type FaultPolicy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;
const passThrough = {
  async execute<T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> {
    return fn({ signal: new AbortController().signal });
  },
} as unknown as FaultPolicy;

export interface EtcdStoreOptions {
  endpoints: string[];
  prefix: string;
  /**
   * Deadline of each etcd call, connecting included; default 5000 ms.
   * (etcd3 ignores its own dialTimeout option, so this is what bounds a dial.)
   */
  dialTimeoutMs?: number;
}

/** rangeEnd is the smallest key greater than every key starting with prefix. */
function rangeEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

function unavailable(endpoints: string[], err: unknown): StoreUnavailableError {
  const msg = err instanceof Error ? err.message : String(err);
  return new StoreUnavailableError(`etcd at ${endpoints.join(',')}: ${msg.split('\n')[0]}`);
}

export function createEtcdStore(options: EtcdStoreOptions): Store {
  const client = new Etcd3({
    hosts: options.endpoints,
    // Fail fast; callers (group commit, startup) own the retry policy.
    faultHandling: { host: () => passThrough, global: passThrough },
  });
  const prefix = options.prefix;
  const full = (key: string) => Buffer.from(prefix + key);
  const callTimeoutMs = options.dialTimeoutMs ?? 5000;
  const deadline = () => ({ deadline: Date.now() + callTimeoutMs });

  return {
    description: `etcd ${options.endpoints.join(',')} prefix ${prefix}`,
    async get(key) {
      try {
        const res = await client.kv.range({ key: full(key) }, deadline());
        const kv = res.kvs[0];
        return kv ? new Uint8Array(kv.value) : undefined;
      } catch (err) {
        throw unavailable(options.endpoints, err);
      }
    },
    async range(keyPrefix: string, opts: RangeOptions = {}): Promise<KeyValue[]> {
      // An `after` that sorts before the prefix does not narrow the range.
      const start =
        opts.after !== undefined && compareKeys(opts.after, keyPrefix) >= 0
          ? Buffer.concat([full(opts.after), Buffer.from([0])])
          : full(keyPrefix);
      try {
        const res = await client.kv.range(
          { key: start, range_end: rangeEnd(full(keyPrefix)), limit: opts.limit ?? 1000 },
          deadline(),
        );
        return res.kvs.map((kv) => ({ key: kv.key.toString().slice(prefix.length), value: new Uint8Array(kv.value) }));
      } catch (err) {
        throw unavailable(options.endpoints, err);
      }
    },
    async commit(ops: StoreOp[]) {
      checkOps(ops);
      if (ops.length === 0) return;
      const success = ops.map((op) =>
        op.value === null
          ? { request_delete_range: { key: full(op.key) } }
          : // A copy: the caller may reuse its buffer as soon as commit() returns.
            { request_put: { key: full(op.key), value: Buffer.from(op.value) } },
      );
      try {
        await client.kv.txn({ success }, deadline());
      } catch (err) {
        throw unavailable(options.endpoints, err);
      }
    },
    async close() {
      client.close();
    },
  };
}
