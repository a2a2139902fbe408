// Runs the built binaries as real child processes, stopped by pid.
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync, writeFileSync } from 'node:fs';
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
