// Exactly-once bookkeeping for fault tests. Every task appends a start line
// and an end line to one ledger file (O_APPEND, one short write each, so lines
// never tear): "S|E <job> <task id> <attempt> <worker pid>". A run counts by
// its end line; a start without an end is an attempt that was killed.
import { readdirSync, readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { ServiceClient } from '../../common/grpc-service.js';
import type { ManagementService } from '../../proto/gen/schedapi/v1/management_pb.js';
import { TaskState, WorkerState, type Task } from '../../proto/gen/schedapi/v1/types_pb.js';
import type { Daemon } from './processes.js';
import { pendingOnDisk } from '../../worker-node/src/outbox.js';

export type Client = ServiceClient<(typeof ManagementService)['method']>;

/** argv of a job: its id comes in $JOB, how long it runs in $SLEEP (seconds; 0 = at once). $PPID is the worker. */
export function jobArgv(ledger: string): string[] {
  const line = `$JOB $SCHED_TASK_ID $SCHED_TASK_ATTEMPT $PPID`;
  return ['/bin/sh', '-c', `echo "S ${line}" >> '${ledger}'; [ "$SLEEP" = 0 ] || sleep "$SLEEP"; echo "E ${line}" >> '${ledger}'`];
}

export interface Mark {
  kind: 'S' | 'E';
  job: string;
  task: string;
  attempt: number;
  ppid: number;
}

export interface Ledger {
  marks: Mark[];
  malformed: string[];
  /** End lines per job. */
  ends: Map<string, Mark[]>;
  /** Attempts (task.attempt) that ended. */
  ended: Set<string>;
}

export const attemptKey = (m: { task: string; attempt: number }): string => `${m.task}.${m.attempt}`;

export function readLedger(file: string): Ledger {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    // no task has run yet
  }
  const ledger: Ledger = { marks: [], malformed: [], ends: new Map(), ended: new Set() };
  for (const line of text.split('\n')) {
    if (!line) continue;
    const m = /^([SE]) (\S+) (\S+) (\d+) (\d+)$/.exec(line);
    if (!m) {
      ledger.malformed.push(line);
      continue;
    }
    const mark: Mark = { kind: m[1] as 'S' | 'E', job: m[2]!, task: m[3]!, attempt: Number(m[4]), ppid: Number(m[5]) };
    ledger.marks.push(mark);
    if (mark.kind === 'E') {
      ledger.ends.set(mark.job, [...(ledger.ends.get(mark.job) ?? []), mark]);
      ledger.ended.add(attemptKey(mark));
    }
  }
  return ledger;
}

/** Attempts that started and have not ended (optionally only those run by one worker process). */
export function inFlight(ledger: Ledger, workerPid?: number): Mark[] {
  return ledger.marks.filter((m) => m.kind === 'S' && !ledger.ended.has(attemptKey(m)) && (workerPid === undefined || m.ppid === workerPid));
}

/** Every stored task, all pages. */
export async function listAll(client: Client, deadlineMs = 5000): Promise<Task[]> {
  const tasks: Task[] = [];
  let pageToken = '';
  do {
    const page = await client.listTasks({ limit: 1000, pageToken }, { deadlineMs });
    tasks.push(...page.tasks);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return tasks;
}

export const isFinal = (t: Task): boolean => t.state === TaskState.DONE || t.state === TaskState.DEAD;

/** /proc/<pid>/stat fields after "(comm)": state, ppid, pgrp. Undefined once the process is gone. */
function stat(pid: number): { state: string; ppid: number; pgrp: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const [state, ppid, pgrp] = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { state: state!, ppid: Number(ppid), pgrp: Number(pgrp) };
  } catch {
    return undefined;
  }
}

/** Gone, or a zombie nobody reaps (PID 1 here may not): either way it runs no more. */
export const processGone = (pid: number): boolean => ['Z', 'X', undefined].includes(stat(pid)?.state);

/** The task processes a worker started: its children marked with SCHED_TASK_ID (not its watchdog). */
function tasksOf(worker: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid <= 1 || stat(pid)?.ppid !== worker) continue;
    try {
      if (readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').some((kv) => kv.startsWith('SCHED_TASK_ID='))) out.push(pid);
    } catch {
      // gone
    }
  }
  return out;
}

function signalGroup(pgrp: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pgrp, sig);
  } catch {
    // gone
  }
}

export interface Crash {
  /** Process groups of the task processes frozen at the kill (the restarted worker must reap them). */
  groups: number[];
  /** Attempts running on the worker when it died. */
  inFlight: Mark[];
  /** Freezes undone because nothing ran, or a task had just ended with its result not yet durable. */
  retries: number;
}

/**
 * Kills a worker with -9 while it runs a task, the way a crash of its machine
 * would: its task processes are stopped (SIGSTOP) with it, so none of them can
 * finish in the gap before its watchdog or the restarted worker kills them.
 * The kill waits for a moment at which every attempt the worker saw end has
 * its result durable (stored by the manager, in the worker's outbox, or moot:
 * the manager gave that attempt up for a newer one). A result still only in
 * the worker's memory would be lost with it and its task rightly run again:
 * at-least-once for a task that really finished, not the bug this hunts.
 */
export async function crashWorker(worker: Daemon, ledgerFile: string, outboxDir: string, client: Client, timeoutMs = 20_000): Promise<Crash> {
  const end = Date.now() + timeoutMs;
  // Settled: the manager is past that attempt (stored its end, or gave it up for a newer one).
  // A task the manager does not name (its list failed, or it did not answer) is not settled.
  const settled = (t: Task | undefined, m: Mark) => t !== undefined && (t.attempt > m.attempt || (t.attempt === m.attempt && isFinal(t)));
  for (let retries = 0; ; retries++) {
    // What the manager has settled already, asked before the freeze so that the freeze stays short.
    let before = new Map<string, Task>();
    try {
      before = new Map((await listAll(client, 5000)).map((t) => [t.id, t]));
    } catch {
      // asked again below, per attempt
    }
    worker.signal('SIGSTOP');
    // A task leads a group of its own (spawned detached); never ours, which the daemons share.
    const ours = stat(process.pid)?.pgrp;
    const groups = [...new Set(tasksOf(worker.pid).map((pid) => stat(pid)?.pgrp ?? 0))].filter((g) => g > 1 && g !== ours);
    for (const g of groups) signalGroup(g, 'SIGSTOP');
    let undurable: string[] = ['?'];
    let ledger: Ledger | undefined;
    try {
      ledger = readLedger(ledgerFile);
      const outbox = pendingOnDisk(outboxDir);
      const open = ledger.marks.filter((m) => m.kind === 'E' && m.ppid === worker.pid && !outbox.has(attemptKey(m)) && !settled(before.get(m.task), m));
      const now = await Promise.all(open.map((m) => client.getTask({ id: m.task }, { deadlineMs: 1000 }).then((r) => r.task)));
      undurable = open.flatMap((m, i) => (settled(now[i], m) ? [] : [`${attemptKey(m)} (${TaskState[now[i]?.state ?? 0]}/${now[i]?.attempt})`]));
    } catch {
      // the manager did not answer: try again
    }
    const running = ledger ? inFlight(ledger, worker.pid) : [];
    if (undurable.length === 0 && running.length > 0) {
      await worker.kill9();
      return { groups, inFlight: running, retries };
    }
    for (const g of groups) signalGroup(g, 'SIGCONT');
    worker.signal('SIGCONT');
    if (Date.now() > end) {
      const why = running.length === 0 ? 'no task running on it' : `results not durable: ${undurable.length}: ${undurable.slice(0, 5).join(', ')}`;
      throw new Error(`no moment to crash worker ${worker.pid} with a task running and every ended task's result durable (last: ${why})`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface Quiet {
  tasks: Task[];
  waitedMs: number;
}

/**
 * Resolves once the system has nothing left to do: every stored task done or
 * dead, `workers` workers connected and running nothing, and the given task
 * process groups gone. Polls; throws with what was still busy after timeoutMs.
 */
export async function waitQuiescent(client: Client, workers: number, groups: number[], timeoutMs = 60_000): Promise<Quiet> {
  const t0 = Date.now();
  let busy = 'nothing asked yet';
  for (;;) {
    try {
      const tasks = await listAll(client);
      const open = tasks.filter((t) => !isFinal(t));
      const ws = (await client.listWorkers({}, { deadlineMs: 5000 })).workers;
      const up = ws.filter((w) => w.state === WorkerState.CONNECTED);
      const running = up.reduce((n, w) => n + w.runningTasks, 0);
      const live = groups.filter((g) => !processGone(g));
      if (open.length === 0 && up.length === workers && running === 0 && live.length === 0) return { tasks, waitedMs: Date.now() - t0 };
      busy = `${open.length} tasks not final (${[...new Set(open.map((t) => TaskState[t.state]))].join(',')}), ${up.length}/${workers} workers connected running ${running}, ${live.length} frozen groups alive`;
    } catch (err) {
      busy = `manager: ${(err as grpc.ServiceError).details ?? String(err)}`;
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`not quiescent after ${timeoutMs}ms: ${busy}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
