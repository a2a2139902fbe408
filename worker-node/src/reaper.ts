// Finds task processes by the markers in their environment and kills their
// process groups (Linux: /proc/<pid>/environ and /proc/<pid>/stat). Shared by
// a restarted worker, for what a crashed run left (Executor.reapOrphans), and
// by the watchdog, for what its worker leaves when it dies (watchdog.ts).
import { readdirSync, readFileSync } from 'node:fs';
import { readMarkers } from './task-env.js';
import type { TaskRef } from './task-id.js';

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
    if (group !== undefined && group > 1 && group !== ownGroup) killGroup(group, 'SIGKILL');
    try {
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    } catch {
      // exited meanwhile, e.g. with its group
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
