// npm run bench: every figure next to a baseline measured in the same run on
// the same machine, printed as one table and written to bench/results/latest.json.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { createServiceClient } from '../common/grpc-service.js';
import { ManagementService } from '../proto/gen/sched/v1/management_pb.js';
import { TaskState, WorkerState } from '../proto/gen/sched/v1/types_pb.js';
import { createEmbeddedStore } from '../management-node/src/store/embedded-store.js';
import { createEtcdStore } from '../management-node/src/store/etcd-store.js';
import { createGroupCommitter } from '../management-node/src/store/group-commit.js';
import type { Store } from '../management-node/src/store/store.js';
import { freePorts, startEtcd, type EtcdHandle } from '../test/support/etcd.js';
import { BIN, ROOT, startDaemon, type Daemon } from '../test/support/processes.js';
import { benchCore } from './core.js';

const log = pino({ level: 'silent' });
const results: Record<string, number | string | object> = {};
const rows: Array<[string, string, string, string]> = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (n: number, d = 0) => Math.round(n * 10 ** d) / 10 ** d;

function row(what: string, value: number, unit: string, baseline: string) {
  rows.push([what, `${round(value, value < 10 ? 2 : 0)}`, unit, baseline]);
}

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

/** Median time of one awaited etcd put: the floor of every commit on the submit → done path. */
async function etcdPutLatency(endpoint: string, n: number): Promise<number> {
  const client = new Etcd3({ hosts: endpoint });
  try {
    const lat: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await client.put(`/lat/${i % 8}`).value(Buffer.from(VALUE));
      lat.push(performance.now() - t0);
    }
    lat.sort((a, b) => a - b);
    return lat[Math.floor(lat.length / 2)]!;
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

function spawnRate(n: number, concurrency: number): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const child = spawn('/bin/true', [], { stdio: 'ignore' });
      child.on('error', reject);
      child.on('exit', () => resolve());
    });
  return Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < n) await one();
    }),
  ).then(() => n / ((performance.now() - t0) / 1000));
}

async function cluster(etcd: EtcdHandle, dir: string) {
  const [port] = (await freePorts(1)) as [number];
  const yaml = join(dir, 'manager.yaml');
  writeFileSync(
    yaml,
    `listen: 127.0.0.1:${port}\nstore: {type: etcd, endpoints: ["${etcd.endpoint}"], prefix: /bench/}\nlog_level: warn\n`,
  );
  const daemons: Daemon[] = [startDaemon(BIN.manager, ['-f', yaml], join(dir, 'manager.log'))];
  for (const n of [1, 2]) {
    const wy = join(dir, `worker-${n}.yaml`);
    writeFileSync(wy, `manager: 127.0.0.1:${port}\ndata_dir: ${join(dir, `w${n}`)}\nlog_level: warn\n`);
    daemons.push(startDaemon(BIN.worker, ['-f', wy], join(dir, `worker-${n}.log`)));
  }
  const client = createServiceClient(ManagementService, `127.0.0.1:${port}`, grpc.credentials.createInsecure());
  for (let i = 0; ; i++) {
    try {
      const { workers } = await client.listWorkers({}, { deadlineMs: 1000 });
      if (workers.filter((w) => w.state === WorkerState.CONNECTED).length === 2) break;
    } catch {
      // not up yet
    }
    if (i > 200) throw new Error('cluster did not come up');
    await sleep(100);
  }
  return { client, stop: async () => (client.close(), await Promise.all(daemons.map((d) => d.stop()))) };
}

async function main() {
  // Scheduler core first, while nothing else runs: placements/s vs a linear scan of the fleet.
  const core = await benchCore();
  Object.assign(results, {
    core_placements_per_s: core.core_placements_per_s,
    core_linear_scan_per_s: core.baseline_linear_scan_per_s,
    core_vs_linear_scan_ratio: round(core.core_placements_per_s / core.baseline_linear_scan_per_s, 1),
    core_by_workers: Object.fromEntries(core.rows.map((r) => [r.workers, round(r.placements_per_s)])),
  });
  row('scheduler core: linear scan over 10k workers', core.baseline_linear_scan_per_s, 'placements/s', 'baseline');
  for (const r of core.rows) {
    const note = r.workers === 10_000 ? `${round(r.placements_per_s / core.baseline_linear_scan_per_s, 0)}× scan (target ≥ 50,000/s)` : '';
    row(`scheduler core: ${r.workers} workers, ${r.tasks} queued`, r.placements_per_s, 'placements/s', note);
  }
  const dir = mkdtempSync(join(tmpdir(), 'sched-bench-'));
  const etcd = await startEtcd();
  try {
    // Store: raw etcd batched txns vs the manager's group-committed transitions.
    const raw = await etcdRawWrites(etcd.endpoint, 20_000);
    const etcdStore = createEtcdStore({ endpoints: [etcd.endpoint], prefix: '/store-bench/' });
    const viaStore = await storeWrites(etcdStore, 20_000);
    await etcdStore.close();
    const embedded = createEmbeddedStore(join(dir, 'lmdb'));
    const viaEmbedded = await storeWrites(embedded, 20_000);
    await embedded.close();
    Object.assign(results, {
      etcd_raw_writes_per_s: round(raw),
      store_writes_per_s: round(viaStore),
      store_write_ratio: round(viaStore / raw, 3),
      embedded_store_writes_per_s: round(viaEmbedded),
    });
    row('etcd raw writes (128-put txns, 8 in flight)', raw, 'writes/s', 'baseline');
    row('store writes via group commit (etcd)', viaStore, 'writes/s', `${round(viaStore / raw, 2)}× raw (target ≥ 0.5)`);
    row('store writes via group commit (embedded)', viaEmbedded, 'writes/s', `${round(viaEmbedded / raw, 2)}× etcd raw`);

    // End to end: trivial tasks through the public API vs a bare Node spawn loop.
    const spawnSeq = await spawnRate(1000, 1);
    const spawnPar = await spawnRate(2000, 16);
    const spawnBest = Math.max(spawnSeq, spawnPar);
    const c = await cluster(etcd, dir);
    try {
      const N = 3000;
      let next = 0;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: 64 }, async () => {
          while (next++ < N) await c.client.runTask({ spec: { argv: ['true'] } }, { deadlineMs: 30_000 });
        }),
      );
      for (;;) {
        const s = await c.client.status({});
        if ((s.tasksByState.done ?? 0) + (s.tasksByState.dead ?? 0) >= N) break;
        await sleep(20);
      }
      const e2e = N / ((performance.now() - t0) / 1000);
      Object.assign(results, { e2e_tasks_per_s: round(e2e), spawn_per_s: round(spawnBest), e2e_vs_spawn_ratio: round(e2e / spawnBest, 3) });
      row('bare spawn of /bin/true (best of 1 and 16 concurrent)', spawnBest, 'spawns/s', 'baseline');
      row('e2e trivial tasks (etcd, 2 workers, 64 in flight)', e2e, 'tasks/s', `${round(e2e / spawnBest, 2)}× spawn (target ≥ 0.6)`);

      // Latency of one task alone: submit → client sees done (the tasks run --wait path).
      const lat: number[] = [];
      for (let i = 0; i < 30; i++) {
        const t1 = performance.now();
        const { task } = await c.client.runTask({ spec: { argv: ['true'] } });
        await new Promise<void>((resolve, reject) => {
          const stream = c.client.watchTasks({ ids: [task!.id] });
          stream.on('data', (m: { task?: { state: TaskState } }) => {
            if (m.task?.state === TaskState.DONE || m.task?.state === TaskState.DEAD) {
              stream.cancel();
              resolve();
            }
          });
          stream.on('error', (err: grpc.ServiceError) => (err.code === grpc.status.CANCELLED ? undefined : reject(err)));
        });
        lat.push(performance.now() - t1);
      }
      lat.sort((a, b) => a - b);
      const p50 = lat[Math.floor(lat.length * 0.5)]!;
      const p99 = lat[Math.min(lat.length - 1, Math.floor(lat.length * 0.99))]!;
      const spawnMs = 1000 / spawnSeq;
      // Two commits are on the path however it is built (pending before the answer, done before the
      // client hears it; same key, so they cannot be in flight together), plus one spawn.
      const putMs = await etcdPutLatency(etcd.endpoint, 100);
      const floorMs = 2 * putMs + spawnMs;
      Object.assign(results, {
        submit_done_p50_ms: round(p50, 2),
        submit_done_p99_ms: round(p99, 2),
        spawn_ms: round(spawnMs, 2),
        etcd_put_p50_ms: round(putMs, 2),
        submit_done_floor_ms: round(floorMs, 2),
        submit_done_vs_floor_ratio: round(p50 / floorMs, 2),
      });
      row('one etcd put, awaited, p50', putMs, 'ms', 'baseline');
      row('floor: 2 commits + 1 spawn', floorMs, 'ms', 'baseline');
      row('submit → done, one task alone, p50', p50, 'ms', `${round(p50 / floorMs, 2)}× floor, ${round(p50 / spawnMs, 1)}× one spawn (target ≤ 6 ms)`);
      row('submit → done, one task alone, p99', p99, 'ms', '');
    } finally {
      await c.stop();
    }
  } finally {
    await etcd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  results.machine = { cpus: cpus().length, cpu_model: cpus()[0]?.model ?? '', memory_bytes: totalmem(), node: process.version };
  results.date = new Date().toISOString();
  const out = join(ROOT, 'bench/results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  const width = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((c, i) => (i === 1 ? c.padStart(width[i]!) : c.padEnd(width[i]!))).join('  '));
  console.log(`\nwritten to bench/results/latest.json`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
