// End to end on the built binaries: 1 manager, 2 workers, and a client in its own process
// (bench/e2e-client.ts) submitting trivial tasks (/bin/true) with 64 RunTask calls in flight;
// tasks per second, and CPU per task of every process from /proc over the measured window.
// Then one task alone, submit → done, many times. Either store: embedded (lmdb) or etcd.
//
// With profileDir, the manager and worker 1 run under node --cpu-prof and their profiles are
// moved there when they exit.
import { existsSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { Daemon } from '../test/support/processes.js';
import { startEtcd, type EtcdHandle } from '../test/support/etcd.js';
import { childrenOf, CpuMeter, type Counted } from './proc-cpu.js';
import { percentile, removeDir, sleep, startManager, startTsChild, startWorker, tempDir, waitConnected, type LineChild, type Manager } from './procs.js';

export type StoreKind = 'etcd' | 'embedded';

export interface E2eOptions {
  store: StoreKind;
  /** Tasks in the measured run (after a warm-up of a tenth as many). */
  tasks: number;
  inFlight?: number;
  /** Single tasks timed submit → done; 0 skips. */
  latencySamples: number;
  /** Run the manager and worker 1 under --cpu-prof; the .cpuprofile files go here. */
  profileDir?: string;
  /** Bound of the measured run. */
  timeoutMs?: number;
}

export interface CpuPerTask {
  manager: number;
  worker: number;
  client: number;
  etcd: number;
  total: number;
}

export interface E2eResult {
  store: StoreKind;
  tasks: number;
  seconds: number;
  /** When the last RunTask was answered (the rest of `seconds` is the backlog draining). */
  submitted_seconds: number;
  status_polls: number;
  tasks_per_s: number;
  /** Tasks that ended dead in the measured run (should be 0). */
  dead: number;
  cpu_ms_per_task: CpuPerTask;
  /** The workers' own CPU (and their watchdogs'), without the tasks they ran. */
  worker_self_cpu_ms_per_task: number;
  /** What the task processes themselves used (the workers' reaped children). */
  worker_tasks_cpu_ms_per_task: number;
  /** Machine-wide busy time per task over the window: the total plus anything else running. */
  machine_cpu_ms_per_task: number;
  p50_ms?: number;
  p99_ms?: number;
  profiles?: { manager?: string; worker?: string };
}

/** The worker's task watchdog: its child running the hidden __task-watchdog subcommand. */
async function watchdogOf(workerPid: number): Promise<number | undefined> {
  for (let i = 0; i < 50; i++) {
    for (const pid of childrenOf(workerPid)) {
      try {
        if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('__task-watchdog')) return pid;
      } catch {
        // gone
      }
    }
    await sleep(100);
  }
  return undefined;
}

/** Moves the profile node wrote for pid (CPU.<date>.<time>.<pid>.<tid>.<seq>.cpuprofile) to dir/name. */
async function claimProfile(dir: string, pid: number, name: string): Promise<string | undefined> {
  const pattern = new RegExp(`^CPU\\.\\d+\\.\\d+\\.${pid}\\.\\d+\\.\\d+\\.cpuprofile$`);
  for (let i = 0; i < 50; i++) {
    const file = existsSync(dir) ? readdirSync(dir).find((f) => pattern.test(f)) : undefined;
    if (file) {
      const to = join(dir, name);
      renameSync(join(dir, file), to);
      return to;
    }
    await sleep(100);
  }
  return undefined;
}

export async function benchE2e(o: E2eOptions): Promise<E2eResult> {
  const dir = tempDir(`sched-bench-e2e-${o.store}-`);
  const prof = (on: boolean) => (on && o.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${o.profileDir}`] : []);
  let etcd: EtcdHandle | undefined;
  let manager: Manager | undefined;
  const workers: Daemon[] = [];
  let client: LineChild | undefined;
  const profiles: { manager?: string; worker?: string } = {};
  try {
    if (o.store === 'etcd') etcd = await startEtcd();
    const storeYaml = etcd
      ? `store: {type: etcd, endpoints: ["${etcd.endpoint}"], prefix: /bench/}`
      : `store: {type: embedded, path: ${join(dir, 'manager-db')}}`;
    manager = await startManager(dir, 'manager', storeYaml, prof(true));
    for (const n of [1, 2]) workers.push(startWorker(dir, `worker-${n}`, manager.address, prof(n === 1)));
    await waitConnected(manager.client, 2, 30_000);
    const watchdogs = (await Promise.all(workers.map((w) => watchdogOf(w.pid)))).filter((p): p is number => p !== undefined);
    if (watchdogs.length < workers.length) console.error(`bench: found ${watchdogs.length} task watchdogs for ${workers.length} workers`);

    client = startTsChild('e2e-client.ts', ['--manager', manager.address]);
    await client.next('ready', 30_000);
    const inFlight = o.inFlight ?? 64;
    client.send({ cmd: 'run', n: Math.max(50, Math.round(o.tasks / 10)), inFlight });
    await client.next('ran', o.timeoutMs ?? 120_000);

    const self = (pid: number): Counted => ({ pid, withChildren: true });
    const meter = new CpuMeter({
      manager: [self(manager.daemon.pid)],
      worker: [...workers.map((w) => self(w.pid)), ...watchdogs.map(self)],
      client: [self(client.pid)],
      etcd: etcd ? [self(etcd.pid)] : [],
    });
    meter.begin();
    client.send({ cmd: 'run', n: o.tasks, inFlight });
    const ran = (await client.next('ran', o.timeoutMs ?? 120_000)) as { ms: number; submittedMs: number; done: number; dead: number; polls: number };
    const cpu = meter.end();
    if (meter.lost.length > 0) throw new Error(`processes exited during the e2e run: ${meter.lost.join(', ')}`);

    const per = (ms: number) => ms / o.tasks;
    const g = cpu.byGroup;
    const cpuPerTask: CpuPerTask = {
      manager: per(g['manager']!),
      worker: per(g['worker']!),
      client: per(g['client']!),
      etcd: per(g['etcd']!),
      total: per(g['manager']! + g['worker']! + g['client']! + g['etcd']!),
    };
    const result: E2eResult = {
      store: o.store,
      tasks: o.tasks,
      seconds: ran.ms / 1000,
      submitted_seconds: ran.submittedMs / 1000,
      status_polls: ran.polls,
      tasks_per_s: o.tasks / (ran.ms / 1000),
      dead: ran.dead,
      cpu_ms_per_task: cpuPerTask,
      worker_self_cpu_ms_per_task: per(cpu.selfByGroup['worker']!),
      worker_tasks_cpu_ms_per_task: per(g['worker']! - cpu.selfByGroup['worker']!),
      machine_cpu_ms_per_task: per(cpu.machineMs),
    };

    if (o.latencySamples > 0) {
      client.send({ cmd: 'latency', n: o.latencySamples });
      const { samples } = (await client.next('latency', 120_000)) as { samples: number[] };
      result.p50_ms = percentile(samples, 0.5);
      result.p99_ms = percentile(samples, 0.99);
    }
    client.send({ cmd: 'exit' });
    await Promise.race([client.exited, sleep(3000)]);

    if (o.profileDir) {
      // The profiles are written as the processes exit (worker 1's watchdog inherits --cpu-prof too).
      const managerPid = manager.daemon.pid;
      const workerPid = workers[0]!.pid;
      await workers[0]!.stop();
      await manager.stop();
      manager = undefined;
      const w = await claimProfile(o.profileDir, workerPid, `worker-${o.store}.cpuprofile`);
      const m = await claimProfile(o.profileDir, managerPid, `manager-${o.store}.cpuprofile`);
      const wd = watchdogs[0];
      if (wd !== undefined) await claimProfile(o.profileDir, wd, `watchdog-${o.store}.cpuprofile`);
      if (m) profiles.manager = m;
      if (w) profiles.worker = w;
      result.profiles = profiles;
    }
    return result;
  } finally {
    await client?.stop();
    await Promise.all(workers.map((w) => w.stop()));
    await manager?.stop();
    await etcd?.stop();
    removeDir(dir);
  }
}
