// Group commit: writes from concurrent requests share one store transaction.
// While a batch is in flight new writes queue up; the next batch takes them
// all (coalesced per key, split into MAX_TXN_OPS chunks). Each caller's
// promise resolves only once its write (or a newer one to the same key) is
// committed.
import { StoreRefusedError } from '../../../common/errors.js';
import type { Logger } from '../../../common/logger.js';
import { MAX_TXN_OPS, type Store, type StoreOp } from './store.js';

interface Pending {
  value: Uint8Array | null;
  waiters: Array<{ resolve: () => void; reject: (err: unknown) => void }>;
}

export interface GroupCommitter {
  write(key: string, value: Uint8Array | null): Promise<void>;
  /** Resolves when everything written so far is committed (or has failed). */
  flush(): Promise<void>;
  readonly stats: { batches: number; ops: number; failures: number };
}

/** Called after each store transaction, for metrics. */
export type CommitObserver = (seconds: number, ops: number, ok: boolean) => void;

/** Bytes per txn, kept well under etcd's default 1.5 MiB request limit. */
export const MAX_TXN_BYTES = 1024 * 1024;

/** chunkBatch splits writes into txns of at most MAX_TXN_OPS ops and about MAX_TXN_BYTES bytes. */
export function chunkBatch<P extends { value: Uint8Array | null }>(entries: Array<[string, P]>): Array<Array<[string, P]>> {
  const chunks: Array<Array<[string, P]>> = [];
  let chunk: Array<[string, P]> = [];
  let bytes = 0;
  for (const entry of entries) {
    const size = entry[0].length + (entry[1].value?.byteLength ?? 0) + 16;
    if (chunk.length > 0 && (chunk.length === MAX_TXN_OPS || bytes + size > MAX_TXN_BYTES)) {
      chunks.push(chunk);
      chunk = [];
      bytes = 0;
    }
    chunk.push(entry);
    bytes += size;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}

export function createGroupCommitter(store: Store, log: Logger, observe?: CommitObserver): GroupCommitter {
  let pending = new Map<string, Pending>();
  let inFlight: Promise<void> | undefined;
  const stats = { batches: 0, ops: 0, failures: 0 };

  async function commitBatch(batch: Map<string, Pending>): Promise<void> {
    const chunks = chunkBatch([...batch]);
    await Promise.all(
      chunks.map(async (chunk) => {
        const ops: StoreOp[] = chunk.map(([key, p]) => ({ key, value: p.value }));
        const t0 = performance.now();
        try {
          await store.commit(ops);
          stats.batches++;
          stats.ops += ops.length;
          observe?.((performance.now() - t0) / 1000, ops.length, true);
          for (const [, p] of chunk) for (const w of p.waiters) w.resolve();
        } catch (err) {
          stats.failures++;
          observe?.((performance.now() - t0) / 1000, ops.length, false);
          log.warn({ err: (err as Error).message, ops: ops.length }, 'store commit failed');
          // A write refused for good must not take the others of its batch down with it.
          if (err instanceof StoreRefusedError && chunk.length > 1) {
            await Promise.all(chunk.map((one) => commitBatch(new Map([one]))));
            return;
          }
          for (const [, p] of chunk) for (const w of p.waiters) w.reject(err);
        }
      }),
    );
  }

  function kick(): void {
    if (inFlight || pending.size === 0) return;
    const batch = pending;
    pending = new Map();
    inFlight = commitBatch(batch).finally(() => {
      inFlight = undefined;
      kick();
    });
  }

  return {
    stats,
    write(key, value) {
      return new Promise<void>((resolve, reject) => {
        const existing = pending.get(key);
        if (existing) {
          existing.value = value;
          existing.waiters.push({ resolve, reject });
        } else {
          pending.set(key, { value, waiters: [{ resolve, reject }] });
        }
        // Let the current tick's writes join the batch before it leaves.
        if (!inFlight) queueMicrotask(kick);
      });
    },
    async flush() {
      while (inFlight || pending.size > 0) {
        kick();
        await inFlight;
      }
    },
  };
}
