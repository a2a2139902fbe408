// Runs task processes (start / cancel / wait, like a Nomad driver). Each task
// gets its own process group, so a cancel reaches everything it forked. Its
// output comes through pipes into capped log files (task-log.ts), so a task
// that writes without end cannot fill the disk.
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { LogBudget, LogSink, TAIL_BYTES } from './task-log.js';

export { TAIL_BYTES };
/** Per task (stdout and stderr together), unless configured. */
export const DEFAULT_LOG_MAX_BYTES = 64 * 1024 * 1024;
/** After the task exits, how long its pipes may stay open (held by an escaped daemon) before they are closed. */
const PIPE_DRAIN_MS = 1000;

export interface TaskRef {
  taskId: string;
  attempt: number;
}
export interface ExecSpec {
  argv: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** Kill the task's process group after this long (SIGTERM, SIGKILL after the kill grace); 0 = no limit. */
  timeoutMs?: number;
  /** What the manager reserved for the task here; counted against the worker's capacity. */
  millicpu?: number;
  memoryBytes?: number;
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
  /** Killed because it ran past its timeout. */
  timedOut?: boolean;
}
/** started: a new process; duplicate: this attempt already runs; busy: another attempt of the task runs. */
export type StartResult = 'started' | 'duplicate' | 'busy';

interface Proc extends TaskRef {
  pid: number;
  spawned: boolean;
  startedUnixMs: number;
  done: boolean;
  millicpu: number;
  memoryBytes: number;
  killAt?: number;
  killTimer?: NodeJS.Timeout;
  timeoutTimer?: NodeJS.Timeout;
  timedOut?: boolean;
  sinks?: [LogSink, LogSink];
  waiters: ((f: FinishedEvent) => void)[];
}

// Task ids become file names, so they must not be able to name another path.
const TASK_ID = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

/** checkTaskId returns why a task id cannot be used, or undefined when it is fine. */
export function checkTaskId(taskId: string): string | undefined {
  return TASK_ID.test(taskId) ? undefined : 'task_id: must be 1-128 of [A-Za-z0-9._-], not starting with "."';
}

/** Every task process carries this variable, so a restarted worker can find what a crashed one left running. */
export const WORKER_ENV = 'SCHED_WORKER_ID';
/** The attempt a task process belongs to, so a restarted worker can report the ones it had to kill. */
export const TASK_ID_ENV = 'SCHED_TASK_ID';
export const TASK_ATTEMPT_ENV = 'SCHED_TASK_ATTEMPT';
/** The error of an attempt killed because the worker that ran it restarted. */
export const REAPED_ERROR = 'worker restarted; task killed';

export interface Reaped {
  /** Every process killed. */
  pids: number[];
  /** One result per attempt identified among them: SIGKILL, exit code 137, REAPED_ERROR. */
  results: FinishedEvent[];
}

export interface ExecutorOptions {
  /** Task logs go to <dataDir>/logs. */
  dataDir: string;
  workerId: string;
  /** Cap of an attempt's log files, stdout and stderr together. */
  logMaxBytes?: number;
  /** Time between SIGTERM and SIGKILL when a task runs past its timeout. */
  timeoutGraceMs?: number;
}

export class Executor extends EventEmitter<{ started: [StartedEvent]; finished: [FinishedEvent] }> {
  readonly logDir: string;
  private readonly workerId: string;
  // Built once: copying a plain object is cheaper than process.env, which
  // spawn would otherwise enumerate through getenv on every start.
  private readonly baseEnv: NodeJS.ProcessEnv;
  private readonly procs = new Map<string, Proc>();
  private readonly logMaxBytes: number;
  private readonly timeoutGraceMs: number;

  constructor(options: ExecutorOptions) {
    super();
    this.workerId = options.workerId;
    this.logMaxBytes = options.logMaxBytes ?? DEFAULT_LOG_MAX_BYTES;
    this.timeoutGraceMs = options.timeoutGraceMs ?? 5_000;
    this.logDir = join(options.dataDir, 'logs');
    this.baseEnv = { ...process.env, [WORKER_ENV]: options.workerId };
    mkdirSync(this.logDir, { recursive: true });
  }

  get size(): number {
    return this.procs.size;
  }

  /** Resources reserved by the tasks running here (adopted orphans reserve nothing). */
  reserved(): { millicpu: number; memoryBytes: number } {
    let millicpu = 0;
    let memoryBytes = 0;
    for (const p of this.procs.values()) {
      millicpu += p.millicpu;
      memoryBytes += p.memoryBytes;
    }
    return { millicpu, memoryBytes };
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
    const proc: Proc = {
      taskId,
      attempt,
      pid: 0,
      spawned: false,
      startedUnixMs: Date.now(),
      done: false,
      millicpu: spec.millicpu ?? 0,
      memoryBytes: spec.memoryBytes ?? 0,
      waiters: [],
    };
    this.procs.set(taskId, proc);
    const logs = this.logPaths(taskId, attempt);
    let child: ChildProcess;
    try {
      // finish() closes the sinks, also when opening the second one or the spawn fails:
      // until the stderr sink exists, stdout's stands in both places.
      const budget = new LogBudget(this.logMaxBytes);
      const out = new LogSink(logs.stdout, budget);
      proc.sinks = [out, out];
      proc.sinks[1] = new LogSink(logs.stderr, budget);
      // The markers come last, so a task's own env cannot hide it from reapOrphans.
      const env = { ...this.baseEnv, ...spec.env, [WORKER_ENV]: this.workerId, [TASK_ID_ENV]: taskId, [TASK_ATTEMPT_ENV]: String(attempt) };
      child = spawn(spec.argv[0] ?? '', spec.argv.slice(1), {
        ...(spec.cwd ? { cwd: spec.cwd } : {}),
        env,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (err) {
      // Synchronous failures (EMFILE opening logs, a NUL byte in argv) are
      // reported on the next turn, like async ones, after start() returned.
      setImmediate(() => this.finish(proc, 126, '', `spawn ${spec.argv[0]} ${(err as Error).message}`));
      return 'started';
    }
    const [out, errSink] = proc.sinks;
    child.stdout?.on('data', (chunk: Buffer) => out.write(chunk));
    child.stderr?.on('data', (chunk: Buffer) => errSink.write(chunk));
    proc.pid = child.pid ?? 0;
    child.once('spawn', () => {
      proc.spawned = true;
      if (spec.timeoutMs) {
        proc.timeoutTimer = setTimeout(() => {
          proc.timedOut = true;
          this.cancel(taskId, attempt, this.timeoutGraceMs);
        }, spec.timeoutMs);
      }
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
      // What the task left in its group dies with it, which closes the pipes; the result waits
      // for the last output, unless something that escaped the group holds them open.
      if (proc.pid) killGroup(proc.pid, 'SIGKILL');
      const drained = setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
        this.finish(proc, exitCode, signal ?? '', '');
      }, PIPE_DRAIN_MS);
      child.once('close', () => {
        clearTimeout(drained);
        this.finish(proc, exitCode, signal ?? '', '');
      });
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

  /**
   * Kills task processes a previous run of this worker left behind (detached
   * groups outlive a worker killed with SIGKILL); the manager has given them
   * up or will, so they must not run on beside a new attempt. Linux only: it
   * finds them by the WORKER_ENV marker in /proc/<pid>/environ, and the attempt
   * each belongs to by TASK_ID_ENV / TASK_ATTEMPT_ENV. Their exit code is
   * unknowable, so each attempt's result says it was killed (SIGKILL, 137,
   * REAPED_ERROR), with the output tails its log files hold.
   */
  reapOrphans(): Reaped {
    let entries: string[];
    try {
      entries = readdirSync('/proc');
    } catch {
      return { pids: [], results: [] };
    }
    const marker = `${WORKER_ENV}=${this.workerId}`;
    const ownGroup = processGroup(process.pid);
    // Find them all first, then kill: a group killed early would hide the environ of its other members.
    const found: { pid: number; group: number | undefined; task: TaskRef | undefined }[] = [];
    for (const entry of entries) {
      const pid = Number(entry);
      if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid || this.isOurs(pid)) continue;
      let env: string[];
      try {
        env = readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
      } catch {
        continue; // gone, or another user's process
      }
      if (!env.includes(marker)) continue;
      found.push({ pid, group: processGroup(pid), task: taskOf(env) });
    }
    const killed: number[] = [];
    for (const { pid, group } of found) {
      // The group too, so a fork racing this scan dies with its parent.
      if (group !== undefined && group > 1 && group !== ownGroup) killGroup(group, 'SIGKILL');
      try {
        process.kill(pid, 'SIGKILL');
        killed.push(pid);
      } catch {
        // exited meanwhile, e.g. with its group
      }
    }
    const results = new Map<string, FinishedEvent>();
    const now = Date.now();
    for (const { pid, group, task } of found) {
      if (!task) continue;
      const k = `${task.taskId}.${task.attempt}`;
      if (results.has(k)) continue; // its children carry the same markers
      const logs = this.logPaths(task.taskId, task.attempt);
      results.set(k, {
        ...task,
        // The task's own process leads its group (it was spawned detached): that is the pid Started reported.
        pid: group !== undefined && group > 1 ? group : pid,
        exitCode: 128 + os.constants.signals.SIGKILL,
        signal: 'SIGKILL',
        error: REAPED_ERROR,
        startedUnixMs: 0, // unknown here; the manager keeps the time from Started
        finishedUnixMs: now,
        stdoutTail: readTail(logs.stdout),
        stderrTail: readTail(logs.stderr),
      });
    }
    return { pids: killed, results: [...results.values()] };
  }

  private isOurs(pid: number): boolean {
    for (const p of this.procs.values()) if (p.pid === pid) return true;
    return false;
  }

  private finish(proc: Proc, exitCode: number, signal: string, error: string): void {
    if (proc.done) return;
    proc.done = true;
    clearTimeout(proc.killTimer);
    clearTimeout(proc.timeoutTimer);
    if (this.procs.get(proc.taskId) === proc) this.procs.delete(proc.taskId);
    // Whatever the task left running in its group dies with it: a finished
    // task must not keep running where the manager cannot see it.
    if (proc.pid) killGroup(proc.pid, 'SIGKILL');
    for (const sink of proc.sinks ?? []) sink.close();
    const result: FinishedEvent = {
      taskId: proc.taskId,
      attempt: proc.attempt,
      pid: proc.pid,
      exitCode,
      signal,
      error,
      startedUnixMs: proc.startedUnixMs,
      finishedUnixMs: Date.now(),
      stdoutTail: proc.sinks?.[0].tailBytes() ?? new Uint8Array(0),
      stderrTail: proc.sinks?.[1].tailBytes() ?? new Uint8Array(0),
      ...(proc.timedOut ? { timedOut: true } : {}),
    };
    this.emit('finished', result);
    for (const resolve of proc.waiters) resolve(result);
  }
}

/** The attempt named by a process's environment, if it names a valid one. */
function taskOf(env: string[]): TaskRef | undefined {
  let taskId: string | undefined;
  let attempt: number | undefined;
  for (const kv of env) {
    if (kv.startsWith(`${TASK_ID_ENV}=`)) taskId = kv.slice(TASK_ID_ENV.length + 1);
    else if (kv.startsWith(`${TASK_ATTEMPT_ENV}=`)) attempt = Number(kv.slice(TASK_ATTEMPT_ENV.length + 1));
  }
  // The id becomes a file name: it must be one the executor would have accepted.
  if (taskId === undefined || checkTaskId(taskId) || attempt === undefined || !Number.isInteger(attempt) || attempt < 0 || attempt > 0xffffffff) return undefined;
  return { taskId, attempt };
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

/** The process group of a process (Linux), from /proc/<pid>/stat. */
function processGroup(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm)" start at field 3 (state); pgrp is field 5.
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
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
