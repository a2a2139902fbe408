import { mkdirSync } from 'node:fs';
import { open, type RootDatabase } from 'lmdb';
import { checkOps, compareKeys, type KeyValue, type RangeOptions, type Store, type StoreOp } from './store.js';

/** The embedded store: one lmdb file set in a directory, for a single manager. */
export function createEmbeddedStore(path: string): Store {
  mkdirSync(path, { recursive: true });
  const db: RootDatabase<Buffer, string> = open({ path, encoding: 'binary', keyEncoding: 'ordered-binary' });
  const copy = (value: Buffer) => new Uint8Array(value);
  return {
    description: `embedded ${path}`,
    async get(key) {
      const value = db.get(key);
      return value === undefined ? undefined : copy(value);
    },
    async range(prefix: string, opts: RangeOptions = {}): Promise<KeyValue[]> {
      const out: KeyValue[] = [];
      const limit = opts.limit ?? 1000;
      // An `after` that sorts before the prefix does not narrow the range.
      const after = opts.after !== undefined && compareKeys(opts.after, prefix) >= 0 ? opts.after : undefined;
      for (const { key, value } of db.getRange({ start: after ?? prefix })) {
        if (!key.startsWith(prefix)) break;
        if (key === after) continue;
        out.push({ key, value: copy(value) });
        if (out.length >= limit) break;
      }
      return out;
    },
    async commit(ops: StoreOp[]) {
      checkOps(ops);
      if (ops.length === 0) return;
      // Copy now: lmdb runs the transaction later, and the caller may reuse
      // its buffers as soon as commit() returns.
      const copied = ops.map((op) => ({ key: op.key, value: op.value === null ? null : Buffer.from(op.value) }));
      // One lmdb transaction: atomic, one fsync for the whole batch.
      await db.transaction(() => {
        for (const op of copied) {
          if (op.value === null) void db.remove(op.key);
          else void db.put(op.key, op.value);
        }
      });
    },
    async close() {
      await db.close();
    },
  };
}
