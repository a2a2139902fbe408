// Runs task processes (start / cancel / wait, like a Nomad driver). Each task
// gets its own process group and, where the worker may make them, its own
// cgroup with the limits it reserved (cgroups.ts), so a cancel reaches
// everything it forked, also what left the group (setsid). It runs as the
// worker's run_as user or the one it names (run-as.ts). Its output comes
// through pipes into capped log files (task-log.ts), so a task that writes
// without end cannot fill the disk.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { chownSync, existsSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { clearLongTimeout, setLongTimeout, type LongTimer } from '../../common/long-timer.js';
import { formatMemorySize } from '../../common/size.js';
import type { AttemptCgroup, Cgroups } from './cgroups.js';
import { privateDir } from './private-fs.js';
import { killGroup, reapLeftovers, REAPED_ERROR, type Reaped } from './reaper.js';
import type { TaskUsers } from './run-as.js';
import { baseTaskEnv, taskEnv, type TaskGroup } from './task-env.js';
import { checkTaskId, type TaskRef } from './task-id.js';
import { LogBudget, LogSink, TAIL_BYTES } from './task-log.js';
import { lateJoin, planSpawn } from './task-spawn.js';

export { REAPED_ERROR, TAIL_BYTES, checkTaskId, type Reaped, type TaskRef };
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
  /** Its cgroup, where the worker makes them; limit: its memory limit in bytes (0: none). */
  cgroup?: AttemptCgroup;
  memoryLimit: number;
  /** Set by abandonAll: the error of its lost result. */
  lostError?: string;
  sinks?: [LogSink, LogSink];
  waiters: ((f: FinishedEvent) => void)[];
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
  /** Each attempt in a cgroup of its own (setupCgroups); without: process groups alone, no limits. */
  cgroups?: Cgroups | undefined;
  /** Who tasks run as (run_as, allowed_users); without: the worker's own user, and a task may name none. */
  users?: TaskUsers | undefined;
  /** Memory added to each task's --mem for its limit (shown in an OOM kill's error). */
  memoryHeadroom?: number;
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
  private readonly cgroups: Cgroups | undefined;
  private readonly users: TaskUsers | undefined;
  private readonly memoryHeadroom: number;

  constructor(options: ExecutorOptions) {
    super();
    this.cgroups = options.cgroups;
    this.users = options.users;
    this.memoryHeadroom = options.memoryHeadroom ?? 0;
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

  /** Why a task may not run as `user` here ("": the default user), or undefined when it may. */
  userProblem(user: string): string | undefined {
    if (this.users) return this.users.problem(user);
    return user === '' ? undefined : `user ${JSON.stringify(user)} is not in this worker's allowed_users`;
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
      memoryLimit: spec.memoryBytes ? spec.memoryBytes + this.memoryHeadroom : 0,
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
      const user = this.users?.resolve(spec.user ?? '');
      if (spec.user && !user) throw new Error(this.userProblem(spec.user));
      const base = user ? { ...this.baseEnv, HOME: user.home, USER: user.name, LOGNAME: user.name } : this.baseEnv;
      const env = taskEnv(base, spec.env, { workerId: this.workerId, runId: this.runId, taskId, attempt, group: spec.group });
      const switchTo = user && this.users!.switchesTo(user) ? user : undefined;
      if (switchTo) for (const file of [logs.stdout, logs.stderr]) chownSync(file, switchTo.uid, switchTo.gid);
      if (this.cgroups) proc.cgroup = this.cgroups.create({ taskId, attempt }, { memoryBytes: proc.memoryBytes, millicpu: proc.millicpu, maxPids: spec.maxPids ?? 0 });
      const plan = planSpawn(spec.argv, { cwd: spec.cwd, path: env.PATH ?? '', joins: proc.cgroup?.procsFiles ?? [], user: switchTo, setpriv: this.users?.setpriv });
      if ('error' in plan) {
        setImmediate(() => this.finish(proc, plan.exitCode, '', plan.error, true));
        return 'started';
      }
      child = spawn(plan.file, plan.args, {
        ...(spec.cwd ? { cwd: spec.cwd } : {}),
        ...(plan.uid !== undefined ? { uid: plan.uid, gid: plan.gid } : {}),
        env,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      // setpriv missing: the worker puts the task in its cgroup, a moment after it started (best effort: it runs already).
      if (child.pid) lateJoin(plan.lateJoins, child.pid);
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
      // What the task left in its group and cgroup dies with it, which closes the pipes; the result
      // waits for the last output, unless something that escaped both holds them open.
      this.kill(proc, 'SIGKILL');
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

  /** SIGTERM to the attempt's process group and cgroup, SIGKILL after graceMs. False when that attempt does not run here. */
  cancel(taskId: string, attempt: number, graceMs: number): boolean {
    const proc = this.procs.get(taskId);
    if (!proc || proc.attempt !== attempt) return false;
    if (!proc.pid) return true; // the spawn failed; its 'finished' is on the way
    this.kill(proc, 'SIGTERM');
    // A later cancel may shorten the grace (shutdown after an operator cancel), never lengthen it.
    const killAt = Date.now() + graceMs;
    if (proc.killAt === undefined || killAt < proc.killAt) {
      clearLongTimeout(proc.killTimer);
      proc.killAt = killAt;
      proc.killTimer = setLongTimeout(() => this.kill(proc, 'SIGKILL'), graceMs);
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
    return reapLeftovers({
      workerId: this.workerId,
      runId: this.runId,
      isOurs: (pid) => this.isOurs(pid),
      cgroups: this.cgroups,
      logPaths: (t) => this.logPaths(t.taskId, t.attempt),
    });
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
      this.kill(proc, 'SIGKILL');
      abandoned.push({ taskId: proc.taskId, attempt: proc.attempt });
    }
    return abandoned;
  }

  /** Signals the attempt's process group and, where it has one, every process in its cgroup. */
  private kill(proc: Proc, signal: NodeJS.Signals): void {
    if (proc.pid) killGroup(proc.pid, signal);
    proc.cgroup?.signal(signal);
  }

  /** Closes the cgroups (after stopAll): waits for those being removed, then removes this run's. */
  async close(): Promise<void> {
    await this.cgroups?.close();
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
    if (!proc.groupKilled) this.kill(proc, 'SIGKILL');
    for (const sink of proc.sinks ?? []) sink.close();
    const stats = proc.cgroup?.stats(signal === 'SIGKILL');
    if (proc.cgroup) this.cgroups!.release(proc.cgroup);
    // The kernel's OOM killer ended it (or one of its processes, and the task failed for it).
    if (stats?.oomKilled && exitCode !== 0 && !error) {
      error = `out of memory: killed by the kernel${proc.memoryLimit ? ` at its ${formatMemorySize(proc.memoryLimit)} limit` : ''}`;
    }
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
      ...(stats?.oomKilled ? { oomKilled: true } : {}),
      ...(stats?.peakMemoryBytes !== undefined ? { peakMemoryBytes: stats.peakMemoryBytes } : {}),
      ...(stats?.cpuTimeUs !== undefined ? { cpuTimeUs: stats.cpuTimeUs } : {}),
    };
    this.emit('finished', result);
    for (const resolve of proc.waiters) resolve(result);
  }
}
