// Group commit: writes from concurrent requests share one store transaction.
// While a batch is in flight new writes queue up; the next batch takes them
// all (coalesced per key, split into MAX_TXN_OPS chunks). Each caller's
// promise resolves only once its write (or a newer one to the same key) is
// committed, with the store revision of the txn that stored it. Commit
// listeners hear of every txn, in revision order, before its writers do.
import { StoreRefusedError } from '../../../common/errors.js';
import type { Logger } from '../../../common/logger.js';
import { MAX_TXN_OPS, type Store, type StoreOp } from './store.js';

interface Pending {
  value: Uint8Array | null;
  waiters: Array<{ resolve: (revision: bigint) => void; reject: (err: unknown) => void }>;
}

/**
 * Told of each committed txn: its revision and its ops (the values the store now holds), in
 * revision order. Also told once, with no ops, of the store's revision when the committer
 * started (if the store answered), so a listener knows where its history begins.
 */
export type CommitListener = (revision: bigint, ops: readonly StoreOp[]) => void;

export interface GroupCommitter {
  /** Resolves with the revision of the txn that stored the write (or a newer one to the key). */
  write(key: string, value: Uint8Array | null): Promise<bigint>;
  /** Resolves when everything written so far is committed (or has failed). */
  flush(): Promise<void>;
  /** Calls listener after every commit from now on; returns the unsubscribe function. */
  onCommit(listener: CommitListener): () => void;
  /** The newest revision known: the latest commit's, or the start revision; 0n before either. */
  revision(): bigint;
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
  const listeners = new Set<CommitListener>();
  let latest = 0n;

  const notify = (revision: bigint, ops: readonly StoreOp[]): void => {
    if (revision > latest) latest = revision;
    for (const l of listeners) {
      try {
        l(revision, ops);
      } catch (err) {
        log.error({ err }, 'commit listener failed');
      }
    }
  };

  /** A chunk as committed: its revision and who waits for it, or the error. */
  type Outcome = { chunk: Array<[string, Pending]>; ops: StoreOp[]; revision: bigint } | { chunk: Array<[string, Pending]>; err: unknown };

  async function commitChunk(chunk: Array<[string, Pending]>): Promise<Outcome[]> {
    const ops: StoreOp[] = chunk.map(([key, p]) => ({ key, value: p.value }));
    const t0 = performance.now();
    try {
      const revision = await store.commit(ops);
      stats.batches++;
      stats.ops += ops.length;
      observe?.((performance.now() - t0) / 1000, ops.length, true);
      return [{ chunk, ops, revision }];
    } catch (err) {
      stats.failures++;
      observe?.((performance.now() - t0) / 1000, ops.length, false);
      log.warn({ err: (err as Error).message, ops: ops.length }, 'store commit failed');
      // A write refused for good must not take the others of its batch down with it.
      if (err instanceof StoreRefusedError && chunk.length > 1) return (await Promise.all(chunk.map((one) => commitChunk([one])))).flat();
      return [{ chunk, err }];
    }
  }

  async function commitBatch(batch: Map<string, Pending>): Promise<void> {
    const outcomes = (await Promise.all(chunkBatch([...batch]).map(commitChunk))).flat();
    // The chunks of a batch commit side by side and may land in any order: everyone hears of
    // them in revision order, so that listeners see the store's history as it is.
    const landed = outcomes.filter((o) => 'revision' in o).sort((a, b) => (a.revision < b.revision ? -1 : a.revision > b.revision ? 1 : 0));
    for (const o of landed) {
      notify(o.revision, o.ops);
      for (const [, p] of o.chunk) for (const w of p.waiters) w.resolve(o.revision);
    }
    for (const o of outcomes) if ('err' in o) for (const [, p] of o.chunk) for (const w of p.waiters) w.reject(o.err);
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

  // Where the history begins: asked before the first batch (which waits for the answer), so no
  // commit of this committer can come before it. Without an answer the first commit tells.
  inFlight = store
    .txn({ compare: [], ops: [] })
    .then(
      (r) => notify(r.revision, []),
      (err: unknown) => log.debug({ err: (err as Error).message }, 'store revision unknown until the first commit'),
    )
    .finally(() => {
      inFlight = undefined;
      kick();
    });

  return {
    stats,
    write(key, value) {
      return new Promise<bigint>((resolve, reject) => {
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
    onCommit(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    revision: () => latest,
  };
}
