// Runs task processes (start / cancel / wait, like a Nomad driver). Each task
// gets its own process group, so a cancel reaches everything it forked, and
// its output goes straight to files: no JS pipes on the hot path.
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';

export const TAIL_BYTES = 4096;

export interface TaskRef {
  taskId: string;
  attempt: number;
}
export interface ExecSpec {
  argv: string[];
  env?: Record<string, string>;
  cwd?: string;
}
export interface StartedEvent extends TaskRef {
  pid: number;
  startedUnixMs: number;
}
export interface FinishedEvent extends TaskRef {
  /** 0 when the process never started. */
  pid: number;
  /** The process's exit code; 128+n when killed by signal n; 127/126 when it could not be started. */
  exitCode: number;
  /** Signal name ("SIGTERM") when killed by a signal, else "". */
  signal: string;
  /** Why the process could not be started ("spawn ./x ENOENT"), else "". */
  error: string;
  startedUnixMs: number;
  finishedUnixMs: number;
  stdoutTail: Uint8Array;
  stderrTail: Uint8Array;
}
/** started: a new process; duplicate: this attempt already runs; busy: another attempt of the task runs. */
export type StartResult = 'started' | 'duplicate' | 'busy';

interface Proc extends TaskRef {
  pid: number;
  spawned: boolean;
  startedUnixMs: number;
  done: boolean;
  killAt?: number;
  killTimer?: NodeJS.Timeout;
  waiters: ((f: FinishedEvent) => void)[];
}

// Task ids become file names, so they must not be able to name another path.
const TASK_ID = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

/** checkTaskId returns why a task id cannot be used, or undefined when it is fine. */
export function checkTaskId(taskId: string): string | undefined {
  return TASK_ID.test(taskId) ? undefined : 'task_id: must be 1-128 of [A-Za-z0-9._-], not starting with "."';
}

export class Executor extends EventEmitter<{ started: [StartedEvent]; finished: [FinishedEvent] }> {
  readonly logDir: string;
  // One file per live process group, so a restarted worker can kill what a
  // crashed one left behind (detached groups outlive their parent).
  readonly runDir: string;
  private readonly procs = new Map<string, Proc>();

  constructor(dataDir: string) {
    super();
    this.logDir = join(dataDir, 'logs');
    this.runDir = join(dataDir, 'run');
    mkdirSync(this.logDir, { recursive: true });
    mkdirSync(this.runDir, { recursive: true });
  }

  get size(): number {
    return this.procs.size;
  }

  running(): TaskRef[] {
    return [...this.procs.values()].map(({ taskId, attempt }) => ({ taskId, attempt }));
  }

  /** The live attempt of a task, if any; pid is 0 until the process exists. */
  get(taskId: string): Readonly<Omit<Proc, 'waiters' | 'killTimer'>> | undefined {
    return this.procs.get(taskId);
  }

  logPaths(taskId: string, attempt: number): { stdout: string; stderr: string } {
    const base = join(this.logDir, `${taskId}.${attempt}`);
    return { stdout: `${base}.stdout`, stderr: `${base}.stderr` };
  }

  /** Starts an attempt. Failures to start are reported as a 'finished' event, never thrown. */
  start(taskId: string, attempt: number, spec: ExecSpec): StartResult {
    const invalid = checkTaskId(taskId);
    if (invalid) throw new TypeError(invalid);
    const current = this.procs.get(taskId);
    if (current) return current.attempt === attempt ? 'duplicate' : 'busy';
    const proc: Proc = { taskId, attempt, pid: 0, spawned: false, startedUnixMs: Date.now(), done: false, waiters: [] };
    this.procs.set(taskId, proc);
    const logs = this.logPaths(taskId, attempt);
    const fds: number[] = [];
    let child: ChildProcess;
    try {
      fds.push(openSync(logs.stdout, 'w'), openSync(logs.stderr, 'w'));
      const env = spec.env && Object.keys(spec.env).length > 0 ? { ...process.env, ...spec.env } : process.env;
      child = spawn(spec.argv[0] ?? '', spec.argv.slice(1), {
        ...(spec.cwd ? { cwd: spec.cwd } : {}),
        env,
        detached: true,
        stdio: ['ignore', fds[0]!, fds[1]!],
      });
    } catch (err) {
      // Synchronous failures (EMFILE opening logs, a NUL byte in argv): the
      // caller has not yet sent Accepted, so report on the next turn.
      setImmediate(() => this.finish(proc, 126, '', `spawn ${spec.argv[0]} ${(err as Error).message}`));
      return 'started';
    } finally {
      // The child holds its own copies; the parent never touches the output.
      for (const fd of fds) closeSync(fd);
    }
    proc.pid = child.pid ?? 0;
    if (proc.pid) this.recordPid(proc);
    child.once('spawn', () => {
      proc.spawned = true;
      this.emit('started', { taskId, attempt, pid: proc.pid, startedUnixMs: proc.startedUnixMs });
    });
    // Without a pid the spawn failed (no 'exit' follows); other errors of a live child are followed by 'exit'.
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (proc.pid) return;
      const cwdGone = err.code === 'ENOENT' && spec.cwd && !existsSync(spec.cwd) ? ` (cwd ${JSON.stringify(spec.cwd)} does not exist)` : '';
      this.finish(proc, err.code === 'ENOENT' ? 127 : 126, '', `${err.message}${cwdGone}`);
    });
    child.once('exit', (code, signal) => {
      const exitCode = code ?? 128 + (signal ? (os.constants.signals[signal] ?? 0) : 0);
      this.finish(proc, exitCode, signal ?? '', '');
    });
    return 'started';
  }

  /** SIGTERM to the attempt's process group, SIGKILL after graceMs. False when that attempt does not run here. */
  cancel(taskId: string, attempt: number, graceMs: number): boolean {
    const proc = this.procs.get(taskId);
    if (!proc || proc.attempt !== attempt) return false;
    if (!proc.pid) return true; // the spawn failed; its 'finished' is on the way
    killGroup(proc.pid, 'SIGTERM');
    // A later cancel may shorten the grace (shutdown after an operator cancel), never lengthen it.
    const killAt = Date.now() + graceMs;
    if (proc.killAt === undefined || killAt < proc.killAt) {
      clearTimeout(proc.killTimer);
      proc.killAt = killAt;
      proc.killTimer = setTimeout(() => killGroup(proc.pid, 'SIGKILL'), graceMs);
    }
    return true;
  }

  /** Resolves with the attempt's result when it exits, or undefined if it does not run here. */
  wait(taskId: string, attempt: number): Promise<FinishedEvent | undefined> {
    const proc = this.procs.get(taskId);
    if (!proc || proc.attempt !== attempt) return Promise.resolve(undefined);
    return new Promise((resolve) => proc.waiters.push(resolve));
  }

  /** Cancels every task and resolves once all have exited. */
  async stopAll(graceMs: number): Promise<void> {
    const procs = [...this.procs.values()];
    for (const p of procs) this.cancel(p.taskId, p.attempt, graceMs);
    await Promise.all(procs.map((p) => this.wait(p.taskId, p.attempt)));
  }

  /** Kills process groups left by a previous worker process that died; returns their pids. */
  reapOrphans(): number[] {
    const killed: number[] = [];
    for (const name of readdirSync(this.runDir)) {
      const file = join(this.runDir, name);
      try {
        const [pidText, recorded] = readFileSync(file, 'utf8').trim().split(' ');
        const pid = Number(pidText);
        const now = procStartTime(pid);
        // A live leader with another start time means the pid was reused: not ours.
        const reused = now !== undefined && recorded !== '-' && now !== recorded;
        if (Number.isInteger(pid) && pid > 1 && !reused && killGroup(pid, 'SIGKILL')) killed.push(pid);
        unlinkSync(file);
      } catch {
        // A file we cannot read or remove is left for the next start.
      }
    }
    return killed;
  }

  private recordPid(proc: Proc): void {
    try {
      writeFileSync(join(this.runDir, `${proc.taskId}.${proc.attempt}`), `${proc.pid} ${procStartTime(proc.pid) ?? '-'}\n`);
    } catch {
      // Best effort: only orphan cleanup after a crash depends on it.
    }
  }

  private finish(proc: Proc, exitCode: number, signal: string, error: string): void {
    if (proc.done) return;
    proc.done = true;
    clearTimeout(proc.killTimer);
    if (this.procs.get(proc.taskId) === proc) this.procs.delete(proc.taskId);
    if (proc.pid) {
      // Whatever the task left running in its group dies with it: a finished
      // task must not keep running where the manager cannot see it.
      killGroup(proc.pid, 'SIGKILL');
      try {
        unlinkSync(join(this.runDir, `${proc.taskId}.${proc.attempt}`));
      } catch {
        // Already gone or never written.
      }
    }
    const logs = this.logPaths(proc.taskId, proc.attempt);
    const result: FinishedEvent = {
      taskId: proc.taskId,
      attempt: proc.attempt,
      pid: proc.pid,
      exitCode,
      signal,
      error,
      startedUnixMs: proc.startedUnixMs,
      finishedUnixMs: Date.now(),
      stdoutTail: readTail(logs.stdout),
      stderrTail: readTail(logs.stderr),
    };
    this.emit('finished', result);
    for (const resolve of proc.waiters) resolve(result);
  }
}

/** Signals a whole process group; true when it still existed. */
function killGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false; // ESRCH: the group is already gone
  }
}

/** The process's start time in clock ticks since boot (Linux), to tell a reused pid apart. */
function procStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm)" start at field 3; starttime is field 22.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function readTail(path: string): Uint8Array {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const size = fstatSync(fd).size;
    const len = Math.min(size, TAIL_BYTES);
    if (len === 0) return new Uint8Array(0);
    const buf = Buffer.allocUnsafe(len);
    const n = readSync(fd, buf, 0, len, size - len);
    return buf.subarray(0, n);
  } catch {
    return new Uint8Array(0);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
