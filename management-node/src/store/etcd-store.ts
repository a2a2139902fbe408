import { Etcd3 } from 'etcd3';
import { StoreUnavailableError } from '../../../common/errors.js';
import type { KeyValue, RangeOptions, Store, StoreOp } from './store.js';

export interface EtcdStoreOptions {
  endpoints: string[];
  prefix: string;
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
    dialTimeout: options.dialTimeoutMs ?? 3000,
    // Fail fast; callers (group commit, startup) own the retry policy.
    faultHandling: {},
  });
  const prefix = options.prefix;
  const full = (key: string) => Buffer.from(prefix + key);
  const deadline = () => ({ deadline: Date.now() + 5000 });

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
      const start = opts.after !== undefined ? Buffer.concat([full(opts.after), Buffer.from([0])]) : full(keyPrefix);
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
      if (ops.length === 0) return;
      const success = ops.map((op) =>
        op.value === null
          ? { request_delete_range: { key: full(op.key) } }
          : { request_put: { key: full(op.key), value: Buffer.from(op.value.buffer, op.value.byteOffset, op.value.byteLength) } },
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
