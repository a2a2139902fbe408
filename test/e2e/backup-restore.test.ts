// Backup and restore of the manager's store, done as docs/operations.md says: etcd with
// `etcdctl snapshot save` / `snapshot restore` into a new data dir and a new etcd; the
// embedded store by copying its directory while the manager is stopped. Either way a
// manager on the restored store lists the same tasks in the same states. The etcd case
// is skipped, saying why, where etcdctl is missing (Debian's etcd-client).
import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanEnv, findEtcd, freePorts, healthy, signal, startEtcd, trackProcess, waitExit, type EtcdHandle } from '../support/etcd.js';
import { BIN, run, startLocalManager, startManager, startWorker, type Daemon, type ManagerHandle } from '../support/processes.js';
import { until } from '../support/until.js';

interface Listed {
  id: string;
  state: string;
  exitCode: number;
  stdoutTail: string;
}

/** The tasks a manager lists (every one: fewer than a page here), id → what the test compares. */
async function listing(address: string): Promise<Map<string, Omit<Listed, 'id'>>> {
  const r = await run(BIN.schedctl, ['--manager', address, '-o', 'json', 'tasks', 'ls']);
  expect(r.code, r.stderr).to.equal(0);
  const { tasks } = JSON.parse(r.stdout) as { tasks: Listed[] };
  return new Map(tasks.map((t) => [t.id, { state: t.state, exitCode: t.exitCode, stdoutTail: t.stdoutTail }]));
}

/** Three tasks that ran and one that cannot be placed (no worker has the label), waited for. */
async function submitTasks(address: string): Promise<void> {
  for (const n of [0, 1, 2]) {
    const r = await run(BIN.schedctl, ['--manager', address, 'tasks', 'run', '--wait', '--', 'sh', '-c', `echo task ${n}; exit ${n}`]);
    expect(r.code, r.stderr).to.equal(n);
  }
  const pending = await run(BIN.schedctl, ['--manager', address, 'tasks', 'run', '-l', 'nowhere=true', '--', 'true']);
  expect(pending.code, pending.stderr).to.equal(0);
}

function etcdctlMissing(): string | undefined {
  const r = spawnSync('etcdctl', ['version'], { encoding: 'utf8' });
  return r.error || r.status !== 0 ? 'etcdctl not found (apt-get install etcd-client)' : undefined;
}

function etcdctl(...args: string[]): void {
  const r = spawnSync('etcdctl', args, { encoding: 'utf8', env: { ...cleanEnv(), ETCDCTL_API: '3' } });
  expect(r.status, `etcdctl ${args.join(' ')}: ${r.stderr}`).to.equal(0);
}

describe('e2e: backup and restore of the store', function () {
  this.timeout(120_000);
  let dir: string;
  const daemons: Daemon[] = [];
  const stops: Array<() => Promise<void>> = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sched-backup-'));
  });

  afterEach(async () => {
    await Promise.all(daemons.splice(0).map((d) => d.stop()));
    for (const stop of stops.splice(0)) await stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const managerOn = (endpoint: string, name: string): Promise<ManagerHandle> =>
    startManager({
      config: `store: {type: etcd, endpoints: [${endpoint}], prefix: /sched/}\nping_interval: 300ms\n`,
      yamlFile: join(dir, `${name}.yaml`),
      logFile: join(dir, `${name}.log`),
    });

  it('etcd: a snapshot saved with etcdctl and restored into a new etcd serves a manager the same tasks', async function () {
    const missing = etcdctlMissing();
    if (missing) {
      console.log(`      skipped: ${missing}`);
      this.skip();
    }
    const etcd: EtcdHandle = await startEtcd();
    stops.push(() => etcd.stop());
    const manager = await managerOn(etcd.endpoint, 'manager');
    daemons.push(manager.daemon);
    daemons.push(await startWorker(manager.address, dir));
    await submitTasks(manager.address);
    const before = await listing(manager.address);
    expect([...before.values()].map((t) => t.state).sort()).to.deep.equal(['TASK_STATE_DONE', 'TASK_STATE_DONE', 'TASK_STATE_DONE', 'TASK_STATE_PENDING']);

    const snapshot = join(dir, 'sched.snapshot.db');
    etcdctl('--endpoints', etcd.endpoint, 'snapshot', 'save', snapshot);
    // The cluster is gone for good: daemons stopped, etcd's data dir removed.
    await Promise.all(daemons.splice(0).map((d) => d.stop()));
    await etcd.stop();

    const [clientPort, peerPort] = (await freePorts(2)) as [number, number];
    const endpoint = `http://127.0.0.1:${clientPort}`;
    const peer = `http://127.0.0.1:${peerPort}`;
    const restored = join(dir, 'etcd-restored');
    etcdctl('snapshot', 'restore', snapshot, '--data-dir', restored, '--name', 'restored', '--initial-cluster', `restored=${peer}`, '--initial-advertise-peer-urls', peer);
    const child = spawn(
      findEtcd(),
      ['--name=restored', `--data-dir=${restored}`, `--listen-client-urls=${endpoint}`, `--advertise-client-urls=${endpoint}`, `--listen-peer-urls=${peer}`],
      { stdio: 'ignore', env: cleanEnv() },
    );
    trackProcess(child, restored, false);
    stops.push(async () => {
      signal(child.pid!, 'SIGTERM');
      await waitExit(child);
    });
    await until('the restored etcd is healthy', () => healthy(endpoint), 20_000, 100);

    // The old leader's key comes back with its lease: the new manager leads once that lease ends.
    const after = await managerOn(endpoint, 'restored-manager');
    daemons.push(after.daemon);
    expect(await listing(after.address)).to.deep.equal(before);
  });

  it('embedded store: its directory copied while the manager is stopped serves a new manager the same tasks', async () => {
    const manager = await startLocalManager(dir);
    daemons.push(manager.daemon);
    daemons.push(await startWorker(manager.address, dir));
    await submitTasks(manager.address);
    const before = await listing(manager.address);
    expect(before.size).to.equal(4);

    await Promise.all(daemons.splice(0).map((d) => d.stop()));
    expect(existsSync(join(dir, 'store', 'manager.pid')), 'the stopped manager released its lock').to.equal(false);
    const copy = join(dir, 'restored');
    cpSync(join(dir, 'store'), join(copy, 'store'), { recursive: true });
    rmSync(join(dir, 'store'), { recursive: true });

    const after = await startLocalManager(copy);
    daemons.push(after.daemon);
    expect(await listing(after.address)).to.deep.equal(before);
  });
});
