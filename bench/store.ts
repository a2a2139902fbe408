// The store in this process: raw etcd batched txns (baseline) vs the manager's group-committed
// transitions on etcd and on the embedded store, and one awaited etcd put (the floor of every
// commit on the submit → done path).
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { createEmbeddedStore } from '../management-node/src/store/embedded-store.js';
import { createEtcdStore } from '../management-node/src/store/etcd-store.js';
import { createGroupCommitter } from '../management-node/src/store/group-commit.js';
import type { Store } from '../management-node/src/store/store.js';
import { startEtcd } from '../test/support/etcd.js';
import { median, removeDir, tempDir } from './procs.js';

const log = pino({ level: 'silent' });
/** A task record's worth of bytes: what one state transition writes. */
const VALUE = new Uint8Array(300).fill(7);

async function etcdRawWrites(endpoint: string, n: number): Promise<number> {
  const client = new Etcd3({ hosts: endpoint });
  try {
    const t0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (;;) {
          const first = next;
          next += 128;
          if (first >= n) return;
          const success = [];
          for (let j = first; j < Math.min(n, first + 128); j++) {
            success.push({ request_put: { key: Buffer.from(`/raw/${j}`), value: Buffer.from(VALUE) } });
          }
          await client.kv.txn({ success });
        }
      }),
    );
    return n / ((performance.now() - t0) / 1000);
  } finally {
    client.close();
  }
}

async function etcdPutLatency(endpoint: string, n: number): Promise<number> {
  const client = new Etcd3({ hosts: endpoint });
  try {
    const lat: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await client.put(`/lat/${i % 8}`).value(Buffer.from(VALUE));
      lat.push(performance.now() - t0);
    }
    return median(lat);
  } finally {
    client.close();
  }
}

/** Many concurrent writers (as many concurrent task transitions), each awaiting its own commit. */
async function storeWrites(store: Store, n: number, concurrency = 1024): Promise<number> {
  const committer = createGroupCommitter(store, log);
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (;;) {
        const i = next++;
        if (i >= n) return;
        await committer.write(`tasks/bench-${i}`, VALUE);
      }
    }),
  );
  return n / ((performance.now() - t0) / 1000);
}

export interface StoreResult {
  etcd_raw_writes_per_s: number;
  store_writes_per_s: number;
  embedded_store_writes_per_s: number;
  etcd_put_p50_ms: number;
}

export async function benchStore(n = 20_000): Promise<StoreResult> {
  const dir = tempDir('sched-bench-store-');
  const etcd = await startEtcd();
  try {
    const raw = await etcdRawWrites(etcd.endpoint, n);
    const etcdStore = createEtcdStore({ endpoints: [etcd.endpoint], prefix: '/store-bench/' });
    const viaStore = await storeWrites(etcdStore, n);
    await etcdStore.close();
    const embedded = createEmbeddedStore(join(dir, 'lmdb'));
    const viaEmbedded = await storeWrites(embedded, n);
    await embedded.close();
    const put = await etcdPutLatency(etcd.endpoint, 100);
    return { etcd_raw_writes_per_s: raw, store_writes_per_s: viaStore, embedded_store_writes_per_s: viaEmbedded, etcd_put_p50_ms: put };
  } finally {
    await etcd.stop();
    removeDir(dir);
  }
}
