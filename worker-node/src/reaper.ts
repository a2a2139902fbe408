// Finds task processes by the markers in their environment and kills their
// process groups (Linux: /proc/<pid>/environ and /proc/<pid>/stat). Shared by
// a restarted worker, for what a crashed run left (reapLeftovers, which also
// empties that run's cgroups), and by the watchdog, for what its worker leaves
// when it dies (watchdog.ts).
import { closeSync, fstatSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import os from 'node:os';
import type { Cgroups } from './cgroups.js';
import type { FinishedEvent } from './executor.js';
import { readMarkers } from './task-env.js';
import type { TaskRef } from './task-id.js';
import { TAIL_BYTES } from './task-log.js';

/** The error of an attempt killed because the worker that ran it restarted. */
export const REAPED_ERROR = 'worker restarted; task killed';

export interface Reaped {
  /** Every process killed. */
  pids: number[];
  /** One result per attempt identified among them: lost, SIGKILL, exit code 137, REAPED_ERROR. */
  results: FinishedEvent[];
}

export interface LeftoverOptions {
  workerId: string;
  /** This run: its tasks are not leftovers. */
  runId: string;
  /** A task process of this run (its children carry this run's marker anyway). */
  isOurs: (pid: number) => boolean;
  /** The task cgroups, where the worker makes them: earlier runs' are swept too. */
  cgroups?: Cgroups | undefined;
  logPaths: (task: TaskRef) => { stdout: string; stderr: string };
}

/**
 * Kills the task processes earlier runs of this worker left: those carrying
 * its markers, and everything in their cgroups (which also holds a process
 * that cleared its environment). Each attempt among them gets a lost result
 * (SIGKILL, 137, REAPED_ERROR) with the output tails its log files hold: its
 * real exit code is unknowable.
 */
export function reapLeftovers(o: LeftoverOptions): Reaped {
  const found = findMarked(o.workerId, o.isOurs).filter((m) => m.runId !== o.runId);
  const killed = killMarked(found);
  const attempts: { task: TaskRef; pid: number }[] = [];
  for (const { pid, group, task } of found) {
    // The task's own process leads its group (it was spawned detached): that is the pid Started reported.
    if (task) attempts.push({ task, pid: group !== undefined && group > 1 ? group : pid });
  }
  for (const { task, pids } of o.cgroups?.killLeftovers() ?? []) {
    attempts.push({ task, pid: Math.min(...pids) });
    for (const pid of pids) if (!killed.includes(pid)) killed.push(pid);
  }
  const results = new Map<string, FinishedEvent>();
  const now = Date.now();
  for (const { task, pid } of attempts) {
    const k = `${task.taskId}.${task.attempt}`;
    if (results.has(k)) continue; // its children carry the same markers
    const logs = o.logPaths(task);
    results.set(k, {
      ...task,
      pid,
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

export interface Marked {
  pid: number;
  /** Its process group, if it could be read. */
  group: number | undefined;
  /** The run of the worker that started it (RUN_ENV), if marked. */
  runId: string | undefined;
  /** The attempt it belongs to, if its markers name a valid one. */
  task: TaskRef | undefined;
}

/** Processes (other than this one and those `skip` names) whose environment marks them as tasks of workerId. */
export function findMarked(workerId: string, skip: (pid: number) => boolean = () => false): Marked[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return []; // not Linux
  }
  const found: Marked[] = [];
  for (const entry of entries) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid || skip(pid)) continue;
    let env: string[];
    try {
      env = readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
    } catch {
      continue; // gone, or another user's process
    }
    const markers = readMarkers(env);
    if (markers.workerId !== workerId) continue;
    found.push({ pid, group: processGroup(pid), runId: markers.runId, task: markers.task });
  }
  return found;
}

/**
 * SIGKILLs each found process and its whole group (so a fork racing the scan
 * dies with its parent), never this process's own group. Find them all first,
 * then kill: a group killed early would hide the environ of its other members.
 * Returns the pids killed (those that had not exited meanwhile).
 */
export function killMarked(found: readonly Marked[]): number[] {
  const ownGroup = processGroup(process.pid);
  const killed: number[] = [];
  for (const { pid, group } of found) {
    const groupKilled = group !== undefined && group > 1 && group !== ownGroup && killGroup(group, 'SIGKILL');
    try {
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    } catch {
      // Gone already: killed with its group (and reaped by its parent at once), or it exited meanwhile.
      if (groupKilled) killed.push(pid);
    }
  }
  return killed;
}

/** Signals a whole process group; true when it still existed. */
export function killGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false; // ESRCH: the group is already gone
  }
}

/** The process group of a process (Linux), from /proc/<pid>/stat. */
export function processGroup(pid: number): number | undefined {
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
