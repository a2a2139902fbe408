// Starts a real etcd for tests: free loopback ports, a fresh temp data dir,
// waits until /health says so. Processes are signalled by pid only.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

export interface EtcdHandle {
  /** Client URL, http://127.0.0.1:P. */
  readonly endpoint: string;
  readonly dataDir: string;
  /** Pid of the current etcd process (changes on restart()). */
  readonly pid: number;
  /** SIGTERM (SIGKILL after 5 s), wait for exit, remove the data dir. */
  stop(): Promise<void>;
  /** SIGKILL, wait for exit; the data dir is kept for restart(). */
  kill9(): Promise<void>;
  /** Start etcd again on the same ports and data dir; waits until healthy. */
  restart(): Promise<void>;
}

export interface EtcdOptions {
  /** --quota-backend-bytes; default 512 MiB. */
  quotaBackendBytes?: number;
  /** Extra command-line flags, appended last. */
  extraArgs?: string[];
}

const HEALTH_TIMEOUT_MS = 15_000;
const HEALTH_RETRY_MS = 50;
const STOP_GRACE_MS = 5_000;
const STDERR_TAIL_BYTES = 16 * 1024;

/** Ports handed out but maybe not bound yet, so concurrent callers never get the same one. */
const handedOut = new Set<number>();

/**
 * Where freePorts looks: below the kernel's ephemeral range, which outgoing connections (of any
 * process on the machine) draw from. A port picked there stays free between the check and the
 * daemon's bind unless another test happens to pick the same one; a port the kernel hands out
 * for listen(0) can be taken meanwhile by any connect(). Undefined where the range is unknown.
 */
const quietRange: [number, number] | undefined = (() => {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return low !== undefined && low > 12_000 ? [10_000, low] : undefined;
  } catch {
    return undefined;
  }
})();

/** Binds 127.0.0.1:port (0 = any) and resolves with the server, or undefined when the port is taken. */
function tryListen(port: number): Promise<Server | undefined> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' || err.code === 'EACCES' ? resolve(undefined) : reject(err)));
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

/**
 * freePorts returns n distinct ports that were free on 127.0.0.1 a moment ago. Better still,
 * let a daemon bind port 0 and report what it got (see startManager in processes.ts).
 */
export async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  const ports: number[] = [];
  try {
    for (let tries = 0; ports.length < n; tries++) {
      const candidate = quietRange && tries < 200 ? quietRange[0] + Math.floor(Math.random() * (quietRange[1] - quietRange[0])) : 0;
      if (handedOut.has(candidate) || ports.includes(candidate)) continue;
      const server = await tryListen(candidate);
      if (!server) continue;
      servers.push(server);
      const address = server.address();
      if (address === null || typeof address === 'string') throw new Error('unexpected server address');
      if (!handedOut.has(address.port)) ports.push(address.port);
    }
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
  for (const p of ports) handedOut.add(p);
  if (handedOut.size > 4096) handedOut.clear();
  return ports;
}

/** freePort returns a port that was free on 127.0.0.1 a moment ago. */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port!;
}

/** tempDir makes a fresh directory under the OS temp dir; the caller removes it. */
export function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix.endsWith('-') ? prefix : `${prefix}-`));
}

/** findEtcd returns the path of the etcd binary on PATH, or throws naming the package to install. */
export function findEtcd(): string {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, 'etcd');
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  throw new Error('etcd not found: install Debian\'s etcd-server (apt-get install etcd-server)');
}

/** The environment without ETCD_* variables, which etcd would read as flags. */
export function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ETCD')) env[k] = v;
  return env;
}

/** exited says whether child has exited (or was killed) and Node has seen it. */
export function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** waitExit resolves once child has exited. */
export function waitExit(child: ChildProcess): Promise<void> {
  if (exited(child)) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** signal sends sig to pid; a pid that is already gone is not an error. */
export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/** One GET /health; resolves true only for {"health":"true"}. */
export function healthy(endpoint: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(`${endpoint}/health`, { agent: false, timeout: 1000, headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        try {
          resolve(res.statusCode === 200 && (JSON.parse(body) as { health?: unknown }).health === 'true');
        } catch {
          resolve(false);
        }
      });
      res.on('error', () => resolve(false));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(false));
    req.end();
  });
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Every etcd this module started and has not yet seen exit; killed if the test process exits first. */
const live = new Map<number, { child: ChildProcess; dataDir: string; removeDir: boolean }>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const [pid, entry] of live) {
      signal(pid, 'SIGKILL');
      if (entry.removeDir) rmSync(entry.dataDir, { recursive: true, force: true });
    }
  });
}

/**
 * trackProcess registers a child a test started: if the test process exits while the child
 * runs, the child is SIGKILLed (by pid) and, when removeDir, dir is removed.
 */
export function trackProcess(child: ChildProcess, dir: string, removeDir = true): void {
  installExitHook();
  if (child.pid === undefined) return;
  const pid = child.pid;
  live.set(pid, { child, dataDir: dir, removeDir });
  child.once('exit', () => live.delete(pid));
}

class EtcdProcess implements EtcdHandle {
  readonly endpoint: string;
  private child: ChildProcess | undefined;
  private stderrTail = '';
  private stopped = false;

  constructor(
    private readonly bin: string,
    readonly dataDir: string,
    private readonly clientPort: number,
    private readonly peerPort: number,
    private readonly options: EtcdOptions,
  ) {
    this.endpoint = `http://127.0.0.1:${clientPort}`;
  }

  get pid(): number {
    return this.child?.pid ?? -1;
  }

  private args(): string[] {
    const name = 'sched-test';
    const peer = `http://127.0.0.1:${this.peerPort}`;
    return [
      `--name=${name}`,
      `--data-dir=${this.dataDir}`,
      `--listen-client-urls=${this.endpoint}`,
      `--advertise-client-urls=${this.endpoint}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=${name}=${peer}`,
      '--initial-cluster-state=new',
      '--initial-cluster-token=sched-test',
      // Small and quick: a capped backend, a short raft log, history compacted
      // every minute. Still durable: every commit is fsynced.
      `--quota-backend-bytes=${this.options.quotaBackendBytes ?? 512 * 1024 * 1024}`,
      '--snapshot-count=10000',
      '--auto-compaction-mode=periodic',
      '--auto-compaction-retention=1m',
      '--heartbeat-interval=50',
      '--election-timeout=500',
      '--logger=zap',
      '--log-outputs=stderr',
      '--log-level=info',
      ...(this.options.extraArgs ?? []),
    ];
  }

  /** Spawns etcd and waits until healthy; on failure the process is killed and the error names its stderr. */
  async start(): Promise<void> {
    this.stopped = false;
    this.stderrTail = '';
    const child = spawn(this.bin, this.args(), { stdio: ['ignore', 'ignore', 'pipe'], env: cleanEnv() });
    this.child = child;
    let spawnError: Error | undefined;
    child.on('error', (err) => (spawnError = err));
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-STDERR_TAIL_BYTES);
    });
    trackProcess(child, this.dataDir);

    const deadline = Date.now() + HEALTH_TIMEOUT_MS;
    for (;;) {
      if (spawnError) {
        const code = (spawnError as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') throw new Error('etcd not found: install Debian\'s etcd-server (apt-get install etcd-server)');
        throw new Error(`cannot start etcd: ${spawnError.message}`);
      }
      if (exited(child)) {
        throw new Error(
          `etcd exited during startup (code ${child.exitCode}, signal ${child.signalCode}); stderr tail:\n${this.tail()}`,
        );
      }
      if (await healthy(this.endpoint)) return;
      if (Date.now() >= deadline) {
        if (child.pid !== undefined) signal(child.pid, 'SIGKILL');
        await waitExit(child);
        throw new Error(`etcd at ${this.endpoint} not healthy after ${HEALTH_TIMEOUT_MS / 1000} s; stderr tail:\n${this.tail()}`);
      }
      await sleep(HEALTH_RETRY_MS);
    }
  }

  /** The last lines of etcd's stderr, for error messages. */
  tail(lines = 30): string {
    return this.stderrTail.trimEnd().split('\n').slice(-lines).join('\n');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const child = this.child;
    if (child && child.pid !== undefined && !exited(child)) {
      const pid = child.pid;
      signal(pid, 'SIGTERM');
      const timer = setTimeout(() => signal(pid, 'SIGKILL'), STOP_GRACE_MS);
      try {
        await waitExit(child);
      } finally {
        clearTimeout(timer);
      }
    }
    await rm(this.dataDir, { recursive: true, force: true });
  }

  async kill9(): Promise<void> {
    const child = this.child;
    if (!child || child.pid === undefined || exited(child)) return;
    signal(child.pid, 'SIGKILL');
    await waitExit(child);
  }

  async restart(): Promise<void> {
    if (this.stopped) throw new Error('etcd was stopped and its data dir removed; cannot restart');
    if (this.child && !exited(this.child)) throw new Error(`etcd (pid ${this.child.pid}) is still running`);
    await this.start();
  }
}

/** startEtcd starts a single-member etcd on free loopback ports in a fresh temp dir. */
export async function startEtcd(options: EtcdOptions = {}): Promise<EtcdHandle> {
  const bin = findEtcd();
  // A port found free can be taken before etcd binds it; try fresh ports a few times.
  for (let attempt = 1; ; attempt++) {
    const [clientPort, peerPort] = (await freePorts(2)) as [number, number];
    const dataDir = await tempDir('sched-etcd-');
    const etcd = new EtcdProcess(bin, dataDir, clientPort, peerPort, options);
    try {
      await etcd.start();
      return etcd;
    } catch (err) {
      await rm(dataDir, { recursive: true, force: true });
      if (attempt < 3 && /address already in use/i.test(etcd.tail(200))) continue;
      throw err;
    }
  }
}
