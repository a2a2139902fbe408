// Every process the bench starts, by pid: children that speak JSON lines on stdout (the fleet,
// the e2e client, the fresh spawn process) and the built daemons. Whatever is still running
// when the bench exits, however it exits, is killed by pid, and the temp dirs are removed.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { createServiceClient, type ServiceClient } from '../common/grpc-service.js';
import { ManagementService } from '../proto/gen/schedapi/v1/management_pb.js';
import { WorkerState } from '../proto/gen/schedapi/v1/types_pb.js';
import { BIN, ROOT, startDaemon, type Daemon } from '../test/support/processes.js';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export type ManagementClient = ServiceClient<(typeof ManagementService)['method']>;

const live = new Set<number>();
const dirs = new Set<string>();

function killAll(): void {
  for (const pid of live) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    console.error(`\nbench: ${sig}, stopping what it started`);
    process.exit(130);
  });
}

/** A temp dir removed at exit (or earlier by the caller). */
export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.add(d);
  return d;
}
export function removeDir(d: string): void {
  rmSync(d, { recursive: true, force: true });
  dirs.delete(d);
}

/** Tracks a pid until the process exits. */
function track(child: ChildProcess): void {
  const pid = child.pid;
  if (pid === undefined) return;
  live.add(pid);
  child.once('exit', () => live.delete(pid));
}

/** A child process that prints one JSON object a line and may read commands on stdin. */
export class LineChild {
  readonly child: ChildProcess;
  private lines: Array<Record<string, unknown>> = [];
  private waiters: Array<() => void> = [];
  private stderr = '';
  readonly exited: Promise<number | null>;

  constructor(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
    this.child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env, cwd: ROOT });
    track(this.child);
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
    let buf = '';
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (chunk: string) => {
      buf += chunk;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          this.lines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // not ours
        }
      }
      for (const w of this.waiters.splice(0)) w();
    });
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (chunk: string) => (this.stderr = (this.stderr + chunk).slice(-4000)));
    this.child.once('exit', () => {
      for (const w of this.waiters.splice(0)) w();
    });
    this.child.stdin!.on('error', () => undefined);
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** Resolves with the first (unconsumed) line whose event is `event`; rejects on exit or after timeoutMs. */
  async next(event: string, timeoutMs: number): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.lines.findIndex((l) => l['event'] === event);
      if (i >= 0) return this.lines.splice(0, i + 1)[i]!;
      const failed = this.lines.find((l) => l['event'] === 'error');
      if (failed) throw new Error(`${this.child.spawnargs.slice(-4).join(' ')}: ${JSON.stringify(failed)}`);
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`${this.child.spawnargs.join(' ')} exited (${this.child.exitCode ?? this.child.signalCode}) before "${event}"; stderr:\n${this.stderr}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no "${event}" from ${this.child.spawnargs.slice(-6).join(' ')} within ${timeoutMs}ms; stderr:\n${this.stderr}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => (clearTimeout(timer), resolve()));
      });
    }
  }

  send(o: object): void {
    this.child.stdin!.write(`${JSON.stringify(o)}\n`);
  }

  /** SIGTERM, SIGKILL after graceMs; resolves once it is gone. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** node with the tsx loader on a bench script (for the fleet and the e2e client). */
export function startTsChild(script: string, args: string[]): LineChild {
  return new LineChild(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', script), ...args]);
}

/** A fleet of fake workers (bench/fleet.ts) in its own process; resolves once all are welcomed. */
export async function startFleet(address: string, workers: number, prefix: string, timeoutMs = 120_000): Promise<LineChild> {
  const fleet = startTsChild('fleet.ts', ['--manager', address, '--workers', String(workers), '--prefix', prefix, '--stats-ms', '60000']);
  try {
    await fleet.next('ready', timeoutMs);
    return fleet;
  } catch (err) {
    await fleet.stop();
    throw err;
  }
}

/** A built binary run by this node, with node flags first (--cpu-prof); tracked by pid. */
export function startBin(bin: string, args: string[], logFile: string, nodeFlags: string[] = []): Daemon {
  const d = startDaemon(process.execPath, [...nodeFlags, bin, ...args], logFile);
  track(d.child);
  return d;
}

export interface Manager {
  daemon: Daemon;
  address: string;
  client: ManagementClient;
  stop(): Promise<void>;
}

/**
 * The built manager on a port the kernel picks (read from its "management node ready" line, so
 * nothing can take it meanwhile). `config` is YAML without listen and log_level.
 */
export async function startManager(dir: string, name: string, config: string, nodeFlags: string[] = []): Promise<Manager> {
  const yaml = join(dir, `${name}.yaml`);
  const log = join(dir, `${name}.log`);
  writeFileSync(yaml, `listen: 127.0.0.1:0\nlog_level: info\n${config}\n`);
  writeFileSync(log, '');
  const daemon = startBin(BIN.manager, ['-f', yaml], log, nodeFlags);
  const deadline = Date.now() + 30_000;
  let offset = 0;
  let text = '';
  for (;;) {
    if (statSync(log).size > offset) {
      const more = readFileSync(log).subarray(offset);
      offset += more.length;
      text += more.toString('utf8');
      const m = /"msg":"management node ready".*?"port":(\d+)|"port":(\d+)[^\n]*"msg":"management node ready"/.exec(text);
      const port = m ? Number(m[1] ?? m[2]) : 0;
      if (port > 0) {
        const address = `127.0.0.1:${port}`;
        const client = createServiceClient(ManagementService, address, grpc.credentials.createInsecure());
        return { daemon, address, client, stop: async () => (client.close(), await daemon.stop()) };
      }
    }
    if (daemon.child.exitCode !== null || Date.now() > deadline) {
      await daemon.stop();
      throw new Error(`manager ${name} did not come up; log:\n${text.slice(-3000)}`);
    }
    await sleep(50);
  }
}

/** The built worker-node connected to `address`; its data under dir/name. */
export function startWorker(dir: string, name: string, address: string, nodeFlags: string[] = []): Daemon {
  const yaml = join(dir, `${name}.yaml`);
  // BENCH_WORKER_CONFIG: more worker config lines, e.g. "cgroups: off" to weigh what cgroups cost per task.
  const extra = process.env.BENCH_WORKER_CONFIG ? `${process.env.BENCH_WORKER_CONFIG.replace(/\\n/g, '\n')}\n` : '';
  writeFileSync(yaml, `manager: ${address}\ndata_dir: ${join(dir, name)}\nlog_level: warn\n${extra}`);
  return startBin(BIN.worker, ['-f', yaml], join(dir, `${name}.log`), nodeFlags);
}

/** Waits until `n` workers are connected (status, cheap), at most timeoutMs. */
export async function waitConnected(client: ManagementClient, n: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const s = await client.status({}, { deadlineMs: 5000 });
      if (s.workersConnected >= n) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`${n} workers not connected within ${timeoutMs}ms`);
    await sleep(100);
  }
}

/** Workers listed as connected (one page is enough for the e2e cluster's two). */
export async function connectedWorkers(client: ManagementClient): Promise<number> {
  const { workers } = await client.listWorkers({}, { deadlineMs: 5000 });
  return workers.filter((w) => w.state === WorkerState.CONNECTED).length;
}

/**
 * Runs a command to its end, output discarded; resolves with wall ms. Rejects when it fails,
 * prints nothing (unless quiet) or runs past timeoutMs (killed by pid).
 */
export function timeRun(cmd: string, args: string[], timeoutMs: number, quiet = false): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    track(child);
    let out = 0;
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.length));
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => (clearTimeout(timer), reject(e)));
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      const ms = performance.now() - t0;
      if (sig === 'SIGKILL') reject(new Error(`${cmd} ${args.join(' ')}: killed after ${timeoutMs}ms`));
      else if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')}: exit ${code}: ${err}`));
      else if (out === 0 && !quiet) reject(new Error(`${cmd} ${args.join(' ')}: printed nothing`));
      else resolve(ms);
    });
  });
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
export const percentile = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
};
export const round = (n: number, d = 0): number => Math.round(n * 10 ** d) / 10 ** d;
