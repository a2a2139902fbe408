// Failover and loss detection, with default settings (leader_lease 3 s, ping
// 1 s × 3 missed): a 3-member etcd cluster on loopback, three managers, one
// worker that lists them all, and a client that follows the leader.
//
// failover_s: kill -9 of the leader → the first task submitted after it is
// acknowledged and placed on the worker (state scheduled or later), measured
// `runs` times (the killed manager comes back as a follower in between).
// worker_loss_detect_s: a worker frozen (SIGSTOP, as a machine that vanishes
// without closing its connections) → the leader shows it disconnected.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { createManagerClient } from '../common/manager-client.js';
import { ManagementService } from '../proto/gen/schedapi/v1/management_pb.js';
import { TaskState, WorkerState } from '../proto/gen/schedapi/v1/types_pb.js';
import { retryUnary } from '../schedctl/src/retry.js';
import { startEtcdCluster } from '../test/support/etcd-cluster.js';
import { BIN, startDaemon, startManager, waitFor, writeYaml, type Daemon } from '../test/support/processes.js';

export interface FailoverResult {
  failover_s: number;
  failover_worst_s: number;
  failover_runs: number[];
  worker_loss_detect_s: number;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function measureFailover(runs = 3): Promise<FailoverResult> {
  const dir = mkdtempSync(join(tmpdir(), 'sched-bench-failover-'));
  const etcd = await startEtcdCluster(3);
  const daemons: Daemon[] = [];
  const store = `{type: etcd, endpoints: [${etcd.endpoints.map((e) => `"${e}"`).join(', ')}], prefix: /bench-failover/}`;
  const managers: Array<{ n: number; address: string; port: number; daemon: Daemon }> = [];
  let boots = 0;
  const boot = async (n: number, port = 0) => {
    // A log file per start: a restarted manager's log must not hold its earlier run's lines.
    const m = await startManager({ config: `store: ${store}\nlog_level: info\n`, yamlFile: join(dir, `m${n}.yaml`), logFile: join(dir, `m${n}-${++boots}.log`), port, until: 'listening' });
    daemons.push(m.daemon);
    return { n, address: m.address, port: m.port, daemon: m.daemon };
  };
  let client: ReturnType<typeof createManagerClient<(typeof ManagementService)['method']>> | undefined;
  try {
    for (let n = 0; n < 3; n++) managers.push(await boot(n));
    // A restarted manager comes back on its port: the list stays true.
    const c = (client = createManagerClient(ManagementService, managers.map((m) => m.address), grpc.credentials.createInsecure()));
    const yaml = writeYaml(join(dir, 'w.yaml'), `managers: [${managers.map((m) => m.address).join(', ')}]\ndata_dir: ${join(dir, 'w')}\nlog_level: info\n`);
    const worker = startDaemon(BIN.worker, ['-f', yaml], join(dir, 'w.log'));
    daemons.push(worker);
    const connected = async () => (await c.listWorkers({}, { deadlineMs: 2000 }).catch(() => ({ workers: [] }))).workers.some((w) => w.state === WorkerState.CONNECTED);
    await waitFor('the worker connected', connected, 60_000);

    const placed = async (): Promise<void> => {
      const { task } = await retryUnary((deadlineMs) => c.runTask({ spec: { argv: ['true'] } }, { deadlineMs }), { totalMs: 60_000, attemptMs: 1000, initialDelayMs: 50, maxDelayMs: 250 });
      await waitFor('the task placed', async () => {
        const t = (await c.getTask({ id: task!.id }, { deadlineMs: 1000 }).catch(() => undefined))?.task;
        return t !== undefined && t.state !== TaskState.PENDING;
      }, 60_000, 20);
    };
    await placed();
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const leader = await waitFor('a leader', () => managers.find((m) => m.daemon.child.exitCode === null && m.daemon.log().includes('"msg":"management node ready"')), 30_000);
      const t0 = performance.now();
      await leader.daemon.kill9();
      await placed();
      times.push((performance.now() - t0) / 1000);
      // The killed one comes back (on its port, so the worker's list still names it), as a follower.
      managers[managers.indexOf(leader)] = await boot(leader.n, leader.port);
      await waitFor('the worker connected', connected, 60_000);
    }

    worker.signal('SIGSTOP');
    const t0 = performance.now();
    await waitFor('the frozen worker disconnected', async () => !(await connected()), 60_000, 20);
    const detect = (performance.now() - t0) / 1000;
    worker.signal('SIGCONT');
    return { failover_s: median(times), failover_worst_s: Math.max(...times), failover_runs: times, worker_loss_detect_s: detect };
  } finally {
    client?.close();
    await Promise.all(daemons.map((d) => d.stop()));
    await etcd.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
