// Runs the built binaries as real child processes, stopped by pid.
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const ROOT = new URL('../../', import.meta.url).pathname;
export const BIN = {
  manager: join(ROOT, 'management-node/bin/management-node'),
  worker: join(ROOT, 'worker-node/bin/worker-node'),
  schedctl: join(ROOT, 'schedctl/bin/schedctl'),
};

export interface Daemon {
  readonly pid: number;
  readonly logFile: string;
  readonly child: ChildProcess;
  exited: Promise<number | null>;
  log(): string;
  /** SIGTERM, then SIGKILL after graceMs; resolves when the process is gone. */
  stop(graceMs?: number): Promise<void>;
  kill9(): Promise<void>;
  signal(sig: NodeJS.Signals): void;
}

export function startDaemon(bin: string, args: string[], logFile: string): Daemon {
  const fd = openSync(logFile, 'a');
  const child = spawn(bin, args, { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code, sig) => resolve(code ?? (sig ? -1 : null))));
  let gone = false;
  void exited.then(() => (gone = true));
  const pid = child.pid!;
  const daemon: Daemon = {
    pid,
    logFile,
    child,
    exited,
    log: () => readFileSync(logFile, 'utf8'),
    async stop(graceMs = 5000) {
      if (gone) return;
      try {
        process.kill(pid, 'SIGCONT');
        process.kill(pid, 'SIGTERM');
      } catch {
        return;
      }
      const timer = setTimeout(() => {
        if (!gone) process.kill(pid, 'SIGKILL');
      }, graceMs);
      await exited;
      clearTimeout(timer);
    },
    async kill9() {
      if (gone) return;
      process.kill(pid, 'SIGKILL');
      await exited;
    },
    signal(sig) {
      if (!gone) process.kill(pid, sig);
    },
  };
  return daemon;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** run executes a short-lived command (schedctl) and collects its output; it is killed by pid after timeoutMs. */
export function run(bin: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      resolve({ code: code ?? (sig ? 128 : -1), stdout, stderr });
    });
  });
}

/** waitFor polls check until it returns a truthy value or the time is up. Tests only. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 15_000, everyMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export function writeYaml(path: string, text: string): string {
  writeFileSync(path, text);
  return path;
}

export interface ManagerHandle {
  readonly daemon: Daemon;
  /** The port the manager's gRPC server is bound to on 127.0.0.1. */
  readonly port: number;
  /** "127.0.0.1:<port>", what workers and schedctl dial. */
  readonly address: string;
  /** The metrics port, when the config has metrics_listen. */
  readonly metricsPort: number | undefined;
}

export interface StartManagerOptions {
  /** The manager's YAML without `listen` (log_level must be info or debug: the port is read from the log). */
  config: string;
  /** Where the YAML is written. */
  yamlFile: string;
  logFile: string;
  /**
   * 0 (the default): the kernel picks a free port when the manager binds, and it is read from
   * the "management node ready" line, so no other process can take it in between. A fixed
   * port (restarting a manager on the port its workers dial) that is briefly taken is retried.
   */
  port?: number;
  /** How long to wait for the ready line; its expiry means the manager never came up. */
  timeoutMs?: number;
  /**
   * 'ready' (the default): resolve once it leads and serves ("management node ready");
   * 'listening': once it listens (a follower of another manager never gets further).
   */
  until?: 'ready' | 'listening';
  /** The management-node executable; default BIN.manager (the standalone test runs dist/'s). */
  bin?: string;
}

const sleepMs = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The JSON log lines of a log file from byte offset on, parsed (other lines are skipped). */
function logRecords(logFile: string, offset: number): Array<Record<string, unknown>> {
  let text: string;
  try {
    text = readFileSync(logFile).subarray(offset).toString('utf8');
  } catch {
    return [];
  }
  const out: Array<Record<string, unknown>> = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a line still being written
    }
  }
  return out;
}

/** startManager starts the built management node and resolves once it is ready, with the ports it bound. */
export async function startManager(o: StartManagerOptions): Promise<ManagerHandle> {
  if (/^\s*log_level:\s*(warn|error|fatal|silent)\b/m.test(o.config)) {
    throw new Error('startManager reads the port from the info-level "management node ready" line: use log_level info or debug');
  }
  const wanted = o.port ?? 0;
  const yaml = writeYaml(o.yamlFile, `listen: 127.0.0.1:${wanted}\n${o.config.endsWith('\n') || o.config === '' ? o.config : `${o.config}\n`}`);
  const deadline = Date.now() + (o.timeoutMs ?? 30_000);
  for (let attempt = 1; ; attempt++) {
    let offset = 0;
    try {
      offset = statSync(o.logFile).size;
    } catch {
      // a new log file
    }
    const daemon = startDaemon(o.bin ?? BIN.manager, ['-f', yaml], o.logFile);
    let exitCode: number | null | undefined;
    void daemon.exited.then((c) => (exitCode = c));
    for (;;) {
      const records = logRecords(o.logFile, offset);
      const ready = records.find((r) => r['msg'] === (o.until === 'listening' ? 'management node listening' : 'management node ready'));
      if (ready && typeof ready['port'] === 'number') {
        const metrics = records.find((r) => r['msg'] === 'serving metrics')?.['metrics'];
        const metricsPort = typeof metrics === 'string' ? Number(/:(\d+)\/metrics$/.exec(metrics)?.[1]) : undefined;
        return { daemon, port: ready['port'], address: `127.0.0.1:${ready['port']}`, metricsPort };
      }
      if (exitCode !== undefined) break;
      if (Date.now() > deadline) {
        await daemon.stop();
        throw new Error(`management node not ready after ${o.timeoutMs ?? 30_000}ms; log:\n${readFileSync(o.logFile).subarray(offset).toString('utf8').slice(-3000)}`);
      }
      await sleepMs(50);
    }
    const log = readFileSync(o.logFile).subarray(offset).toString('utf8');
    const clash = /cannot listen on .*(EADDRINUSE|address already in use)/i.test(log);
    if (clash && wanted !== 0 && attempt < 20 && Date.now() < deadline) {
      await sleepMs(250);
      continue;
    }
    throw new Error(`management node exited (code ${exitCode}) before it was ready; log:\n${log.slice(-3000)}`);
  }
}

/**
 * A manager on the embedded store in dir/store (the CLI tests' cluster), logging to
 * dir/manager.log; port: restart one on the port its workers dial.
 */
export function startLocalManager(dir: string, extraConfig = '', port?: number): Promise<ManagerHandle> {
  return startManager({
    config: `store: {type: embedded, path: ${join(dir, 'store')}}\nping_interval: 300ms\n${extraConfig}`,
    yamlFile: join(dir, 'manager.yaml'),
    logFile: join(dir, 'manager.log'),
    ...(port !== undefined ? { port } : {}),
  });
}

/**
 * A worker of the manager at address with its data in dir/<file> and its log in
 * dir/<file>.log (extraConfig: more YAML lines); resolves once schedctl lists a
 * connected worker.
 */
export async function startWorker(address: string, dir: string, extraConfig = '', file = 'worker'): Promise<Daemon> {
  const yaml = writeYaml(join(dir, `${file}.yaml`), `manager: ${address}\ndata_dir: ${join(dir, file)}\n${extraConfig}`);
  const daemon = startDaemon(BIN.worker, ['-f', yaml], join(dir, `${file}.log`));
  await waitFor('the worker connected', async () => /\bconnected\b/.test((await run(BIN.schedctl, ['--manager', address, 'workers', 'ls'])).stdout));
  return daemon;
}
