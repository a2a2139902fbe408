// The task watchdog: task processes never outlive their worker-node. Tasks
// run in process groups of their own (detached), so a worker killed with
// SIGKILL would leave them running. Each worker process starts one watchdog:
// a small node process in a session of its own (a terminal's Ctrl-C or a kill
// of the worker's group does not reach it) whose stdin is a pipe from the
// worker. Nothing is ever written to it: when the worker exits, however it
// exits, the kernel closes the pipe, and the watchdog, reading EOF, kills
// every process marked with its worker's id and run (reaper.ts), and
// everything in that run's task cgroups (also what cleared its environment),
// removes those cgroups, then exits.
// On a normal shutdown the worker has stopped its tasks before it closes the
// pipe, so the watchdog finds nothing. The worker's end of the pipe is
// close-on-exec, so no task holds it open.
import { spawn, type ChildProcess } from 'node:child_process';
import { rmdirSync } from 'node:fs';
import type { Socket } from 'node:net';
import { dirname } from 'node:path';
import { isSea } from 'node:sea';
import { createLogger, type LogFormat, type Logger } from '../../common/logger.js';
import { childrenOf, removeWhenEmpty } from './cgroups-fs.js';
import { findMarked, killMarked } from './reaper.js';

/** The hidden subcommand of worker-node that runs the watchdog (main.ts). */
export const WATCHDOG_COMMAND = '__task-watchdog';
/** Scans at most: the later ones catch what forked out of its group while the first pass killed. */
const MAX_PASSES = 3;
/** Pause before a watchdog that died is started again. */
const RESTART_DELAY_MS = 1000;

export interface WatchdogOptions {
  workerId: string;
  /** Only tasks of this run of the worker (RUN_ENV) are the watchdog's: a restarted worker's are not. */
  runId: string;
  logger: Logger;
  logLevel: string;
  /** The worker's log_format, so the watchdog's lines look like the worker's. */
  logFormat?: LogFormat | undefined;
  /** This run's task cgroup directories (Cgroups.runPaths), one per hierarchy: what is in the cgroups below them dies too. */
  cgroupDirs?: readonly string[] | undefined;
  /** Program and arguments that run main.ts; by default this process's own (defaultCommand). */
  command?: readonly string[];
  restartDelayMs?: number;
}

/**
 * The command that runs this program again: node, its flags (a loader under
 * tsx; not the inspector's, whose port the worker holds) and the script, which
 * in the bundle is worker-node itself.
 */
export function defaultCommand(): string[] {
  // A standalone executable (make dist) is node and the script in one file: Node itself puts the
  // program back in as argv[1] for the child, so the command is the executable alone.
  if (isSea()) return [process.execPath];
  const flags = process.execArgv.filter((a) => !/^--(inspect|debug)/.test(a));
  return [process.execPath, ...flags, process.argv[1] ?? ''];
}

/** The worker's handle on its watchdog; close() on normal shutdown, once the tasks are stopped. */
export class Watchdog {
  private child: ChildProcess | undefined;
  private closed = false;
  private restartTimer: NodeJS.Timeout | undefined;

  constructor(private readonly o: WatchdogOptions) {
    this.spawn();
  }

  /** The watchdog's pid while it runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Closes the pipe: the watchdog looks for tasks left (none, after a clean stop) and exits. */
  close(): void {
    this.closed = true;
    clearTimeout(this.restartTimer);
    this.child?.stdin?.destroy();
  }

  private spawn(): void {
    // worker-node's own binary with a hidden subcommand, not `node -e <code>`: the bundle carries the shared reaper code.
    const [program = process.execPath, ...args] = this.o.command ?? defaultCommand();
    const child = spawn(program, [...args, WATCHDOG_COMMAND, this.o.workerId, this.o.runId, this.o.logLevel, this.o.logFormat ?? '', JSON.stringify(this.o.cgroupDirs ?? [])], {
      detached: true,
      stdio: ['pipe', 'ignore', 'inherit'],
    });
    this.child = child;
    // Neither the process nor the idle pipe may keep the worker's event loop alive.
    child.unref();
    (child.stdin as Socket | null)?.unref();
    child.stdin?.on('error', () => undefined); // EPIPE once the watchdog is gone; nothing is written anyway
    child.once('spawn', () => this.o.logger.info({ pid: child.pid }, 'task watchdog started'));
    const gone = (why: Record<string, unknown>): void => {
      if (this.child !== child) return;
      this.child = undefined;
      if (this.closed) return;
      this.o.logger.error({ ...why, pid: child.pid }, 'task watchdog is gone; starting another (tasks would outlive a killed worker meanwhile)');
      this.restartTimer = setTimeout(() => this.spawn(), this.o.restartDelayMs ?? RESTART_DELAY_MS).unref();
    };
    child.once('error', (err) => gone({ err })); // only a failed spawn: the watchdog never gets a signal from here
    child.once('exit', (code, signal) => gone({ code, signal }));
  }
}

/** The watchdog process itself: argv is what follows WATCHDOG_COMMAND (worker id, run id, log level, log format, cgroup dirs as JSON). */
export function runWatchdog(argv: readonly string[]): void {
  const [workerId = '', runId = '', level = 'info', format = '', cgroupsJson = '[]'] = argv;
  let cgroupDirs: string[] = [];
  try {
    const parsed: unknown = JSON.parse(cgroupsJson);
    if (Array.isArray(parsed)) cgroupDirs = parsed.filter((d): d is string => typeof d === 'string' && d.startsWith('/'));
  } catch {
    // none
  }
  const logger = createLogger('worker-node-watchdog', level, format === 'text' || format === 'json' ? format : undefined);
  if (!workerId || !runId) {
    logger.fatal('usage: worker-node __task-watchdog <worker id> <run id> [log level]');
    process.exit(2);
  }
  // Its life is its worker's: it ends when the pipe does, not on a signal meant for the worker.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => logger.debug({ signal }, 'ignored'));
  let done = false;
  const reap = async (): Promise<void> => {
    if (done) return;
    done = true;
    const killed = new Set<number>();
    const tasks = new Set<string>();
    for (let pass = 0; pass < MAX_PASSES; pass++) {
      const found = findMarked(workerId).filter((m) => m.runId === runId);
      if (found.length === 0) break;
      for (const m of found) if (m.task) tasks.add(`${m.task.taskId}.${m.task.attempt}`);
      for (const pid of killMarked(found)) killed.add(pid);
    }
    if (cgroupDirs.length > 0) {
      const attempts = childrenOf(cgroupDirs);
      for (const [name, { pids }] of attempts) {
        if (pids.length > 0) tasks.add(name);
        for (const pid of pids) killed.add(pid);
      }
      // Killed until empty and removed, then this run's cgroup, and the worker's when no other run has one.
      const left = await removeWhenEmpty([...[...attempts.values()].map((a) => a.dirs), cgroupDirs]);
      if (left.length > 0) logger.warn({ cgroups: left.flat() }, 'task cgroups not yet empty; the next start of the worker removes them');
      for (const dir of cgroupDirs) {
        try {
          rmdirSync(dirname(dir));
        } catch {
          // another run's cgroups are there, or a task of this one still dies
        }
      }
    }
    if (killed.size > 0) logger.warn({ workerId, pids: [...killed], tasks: [...tasks] }, 'worker-node is gone: killed the task processes it left');
    else logger.debug({ workerId }, 'worker-node closed the pipe; no task processes left');
    process.exit(0);
  };
  const onEnd = (): void => void reap();
  process.stdin.on('end', onEnd);
  process.stdin.on('close', onEnd);
  process.stdin.on('error', onEnd);
  process.stdin.resume();
  logger.debug({ workerId, runId }, 'watching the worker-node');
}
