import { mkdirSync } from 'node:fs';
import { open, type RootDatabase } from 'lmdb';
import type { KeyValue, RangeOptions, Store, StoreOp } from './store.js';

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
      for (const { key, value } of db.getRange({ start: opts.after ?? prefix })) {
        if (!key.startsWith(prefix)) break;
        if (opts.after !== undefined && key === opts.after) continue;
        out.push({ key, value: copy(value) });
        if (out.length >= limit) break;
      }
      return out;
    },
    async commit(ops: StoreOp[]) {
      // One lmdb transaction: atomic, one fsync for the whole batch.
      await db.transaction(() => {
        for (const op of ops) {
          if (op.value === null) void db.remove(op.key);
          else void db.put(op.key, Buffer.from(op.value));
        }
      });
    },
    async close() {
      await db.close();
    },
  };
}
