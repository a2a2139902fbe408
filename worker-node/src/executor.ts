// Runs task processes (start / cancel / wait, like a Nomad driver). Each task
// gets its own process group, so a cancel reaches everything it forked. Its
// output comes through pipes into capped log files (task-log.ts), so a task
// that writes without end cannot fill the disk.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { closeSync, existsSync, fstatSync, openSync, readSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { clearLongTimeout, setLongTimeout, type LongTimer } from '../../common/long-timer.js';
import { privateDir } from './private-fs.js';
import { findMarked, killGroup, killMarked } from './reaper.js';
import { baseTaskEnv, taskEnv, type TaskGroup } from './task-env.js';
import { checkTaskId, type TaskRef } from './task-id.js';
import { LogBudget, LogSink, TAIL_BYTES } from './task-log.js';

export { TAIL_BYTES, checkTaskId, type TaskRef };
export { RUN_ENV, TASK_ATTEMPT_ENV, TASK_ID_ENV, WORKER_ENV } from './task-env.js';
/** Per task (stdout and stderr together), unless configured. */
export const DEFAULT_LOG_MAX_BYTES = 64 * 1024 * 1024;
/** After the task exits, how long its pipes may stay open (held by an escaped daemon) before they are closed. */
const PIPE_DRAIN_MS = 1000;

export interface ExecSpec {
  argv: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** Kill the task's process group after this long (SIGTERM, SIGKILL after the kill grace); 0 = no limit. */
  timeoutMs?: number;
  /** What the manager reserved for the task here; counted against the worker's capacity. */
  millicpu?: number;
  memoryBytes?: number;
  /** The task's group and its place in it (SCHED_GROUP_ID, SCHED_TASK_INDEX, SCHED_TASK_COUNT); checked by checkGroup. */
  group?: TaskGroup;
  /** Run as this user (a name the worker's allowed_users lists; session.ts checks); default: the worker's run_as. */
  user?: string;
  /** The attempt's pids limit; 0 or unset: the worker's default. */
  maxPids?: number;
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
  /** The process never started (error says why; exitCode 127 when not found, else 126). */
  startFailed?: boolean;
  /** Not a result: the worker killed it because it lost it (restart, orphan timeout); error says which. */
  lost?: boolean;
  /** The kernel's OOM killer killed a process of the attempt (its cgroup's memory limit). */
  oomKilled?: boolean;
  /** From the attempt's cgroup, where there is one: the most memory in use at once, and CPU time (user + system). */
  peakMemoryBytes?: number;
  cpuTimeUs?: number;
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
  killTimer?: LongTimer;
  timeoutTimer?: LongTimer;
  timedOut?: boolean;
  /** Its process group was killed when it exited. */
  groupKilled?: boolean;
  /** Set by abandonAll: the error of its lost result. */
  lostError?: string;
  sinks?: [LogSink, LogSink];
  waiters: ((f: FinishedEvent) => void)[];
}

/** The error of an attempt killed because the worker that ran it restarted. */
export const REAPED_ERROR = 'worker restarted; task killed';

export interface Reaped {
  /** Every process killed. */
  pids: number[];
  /** One result per attempt identified among them: lost, SIGKILL, exit code 137, REAPED_ERROR. */
  results: FinishedEvent[];
}

export interface ExecutorOptions {
  /** Task logs go to <dataDir>/logs. */
  dataDir: string;
  workerId: string;
  /** This run of the worker (RUN_ENV); random by default. */
  runId?: string;
  /** Names of the worker's environment variables passed to tasks besides the basics (task-env.ts). */
  envInherit?: readonly string[];
  /** Cap of an attempt's log files, stdout and stderr together. */
  logMaxBytes?: number;
  /** Time between SIGTERM and SIGKILL when a task runs past its timeout. */
  timeoutGraceMs?: number;
}

export class Executor extends EventEmitter<{ started: [StartedEvent]; finished: [FinishedEvent] }> {
  readonly logDir: string;
  readonly runId: string;
  private readonly workerId: string;
  // Built once: copying a plain object is cheaper than reading process.env on every start.
  private readonly baseEnv: Record<string, string>;
  private readonly procs = new Map<string, Proc>();
  private readonly logMaxBytes: number;
  private readonly timeoutGraceMs: number;

  constructor(options: ExecutorOptions) {
    super();
    this.workerId = options.workerId;
    this.runId = options.runId ?? randomBytes(8).toString('hex');
    this.logMaxBytes = options.logMaxBytes ?? DEFAULT_LOG_MAX_BYTES;
    this.timeoutGraceMs = options.timeoutGraceMs ?? 5_000;
    this.logDir = join(options.dataDir, 'logs');
    this.baseEnv = baseTaskEnv(process.env, options.envInherit);
    privateDir(options.dataDir); // one level at a time, each made 0700 before the next is created in it
    privateDir(this.logDir);
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
      const env = taskEnv(this.baseEnv, spec.env, { workerId: this.workerId, runId: this.runId, taskId, attempt, group: spec.group });
      child = spawn(spec.argv[0] ?? '', spec.argv.slice(1), {
        ...(spec.cwd ? { cwd: spec.cwd } : {}),
        env,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (err) {
      // Synchronous failures (EMFILE opening logs, a NUL byte in argv) are
      // reported on the next turn, like async ones, after start() returned.
      setImmediate(() => this.finish(proc, 126, '', `spawn ${spec.argv[0]} ${(err as Error).message}`, true));
      return 'started';
    }
    const [out, errSink] = proc.sinks;
    child.stdout?.on('data', (chunk: Buffer) => out.write(chunk));
    child.stderr?.on('data', (chunk: Buffer) => errSink.write(chunk));
    proc.pid = child.pid ?? 0;
    child.once('spawn', () => {
      proc.spawned = true;
      if (spec.timeoutMs) {
        proc.timeoutTimer = setLongTimeout(() => {
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
      this.finish(proc, err.code === 'ENOENT' && !cwdGone ? 127 : 126, '', `${err.message}${cwdGone}`, true);
    });
    child.once('exit', (code, signal) => {
      const exitCode = code ?? 128 + (signal ? (os.constants.signals[signal] ?? 0) : 0);
      // What the task left in its group dies with it, which closes the pipes; the result waits
      // for the last output, unless something that escaped the group holds them open.
      if (proc.pid) killGroup(proc.pid, 'SIGKILL');
      proc.groupKilled = true;
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
      clearLongTimeout(proc.killTimer);
      proc.killAt = killAt;
      proc.killTimer = setLongTimeout(() => killGroup(proc.pid, 'SIGKILL'), graceMs);
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
   * finds them by their markers (reaper.ts). Their exit code is unknowable, so
   * each attempt's result says it was lost and killed (lost, SIGKILL, 137,
   * REAPED_ERROR), with the output tails its log files hold.
   */
  reapOrphans(): Reaped {
    // Only what another run left: this run's own tasks (and their children) are not orphans.
    const found = findMarked(this.workerId, (pid) => this.isOurs(pid)).filter((m) => m.runId !== this.runId);
    const killed = killMarked(found);
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
        lost: true,
      });
    }
    return { pids: killed, results: [...results.values()] };
  }

  /**
   * SIGKILLs every running task's process group because the worker lost them
   * (the manager gave them up or will); each result says lost, with `error`.
   */
  abandonAll(error: string): TaskRef[] {
    const abandoned: TaskRef[] = [];
    for (const proc of this.procs.values()) {
      if (!proc.pid || proc.done) continue; // a failed spawn reports itself
      proc.lostError = error;
      killGroup(proc.pid, 'SIGKILL');
      abandoned.push({ taskId: proc.taskId, attempt: proc.attempt });
    }
    return abandoned;
  }

  private isOurs(pid: number): boolean {
    for (const p of this.procs.values()) if (p.pid === pid) return true;
    return false;
  }

  private finish(proc: Proc, exitCode: number, signal: string, error: string, startFailed = false): void {
    if (proc.done) return;
    proc.done = true;
    clearLongTimeout(proc.killTimer);
    clearLongTimeout(proc.timeoutTimer);
    if (this.procs.get(proc.taskId) === proc) this.procs.delete(proc.taskId);
    // Whatever the task left running in its group dies with it: a finished
    // task must not keep running where the manager cannot see it. (Done already at its exit.)
    if (proc.pid && !proc.groupKilled) killGroup(proc.pid, 'SIGKILL');
    for (const sink of proc.sinks ?? []) sink.close();
    const result: FinishedEvent = {
      taskId: proc.taskId,
      attempt: proc.attempt,
      pid: proc.pid,
      exitCode,
      signal,
      error: proc.lostError ?? error,
      startedUnixMs: proc.startedUnixMs,
      finishedUnixMs: Date.now(),
      stdoutTail: proc.sinks?.[0].tailBytes() ?? new Uint8Array(0),
      stderrTail: proc.sinks?.[1].tailBytes() ?? new Uint8Array(0),
      ...(proc.timedOut ? { timedOut: true } : {}),
      ...(startFailed ? { startFailed: true } : {}),
      ...(proc.lostError !== undefined ? { lost: true } : {}),
    };
    this.emit('finished', result);
    for (const resolve of proc.waiters) resolve(result);
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
