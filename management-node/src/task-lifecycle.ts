// The task state machine: each transition of one task record, and the rule above
// all others (docs/architecture.md): at most one live attempt. Pure: it changes
// the record it is given and answers questions about it; storing the change,
// telling workers and placing the task again are the callers' part (attempts.ts,
// dispatch.ts).
//
//   pending ─offered─▶ pending, attempt n out ─Accepted or Started─▶ scheduled
//   pending, attempt n out ─refused or withdrawn─▶ pending (takenBack)
//   scheduled ─Finished─▶ done, or dead (start-failed, cancelled)
//   scheduled ─worker lost─▶ pending with a retry used (retried), or dead
//   pending ─cancel, schedule timeout, refused by every worker─▶ dead
import { TaskState, type Task } from '../../proto/gen/schedapi/v1/types_pb.js';
import type { Finished } from '../../proto/gen/schedapi/v1/worker_pb.js';
import { orderTimes } from './task-rules.js';

const TERMINAL = new Set([TaskState.DONE, TaskState.DEAD]);
export const isTerminal = (t: Task): boolean => TERMINAL.has(t.state);

/**
 * isCurrentAttempt: a report names the task's current attempt, on the worker it was offered to.
 * Any other report changes nothing (an older attempt, or a session reporting what it was not offered).
 */
export const isCurrentAttempt = (task: Task, workerId: string, attempt: number): boolean =>
  task.workerId === workerId && task.attempt === attempt;

/**
 * mayAdopt: after a restart, a pending task held since then (never offered since) takes a report
 * of a newer attempt than the store holds from a worker the store knew: the worker accepted it
 * before the crash, but the write of the offer or the acceptance never landed. Adopting it is what
 * keeps the task from running twice. heldFromKnownWorker says the task is held and the worker known.
 */
export const mayAdopt = (task: Task, attempt: number, heldFromKnownWorker: boolean): boolean =>
  task.state === TaskState.PENDING && heldFromKnownWorker && attempt > task.attempt;

/** adopt makes a reported attempt the task's current one (see mayAdopt). */
export function adopt(task: Task, workerId: string, attempt: number): void {
  task.workerId = workerId;
  task.attempt = attempt;
}

/** offered: the next attempt goes to workerId; reports of any earlier attempt are ignored from now on. */
export function offered(task: Task, workerId: string): void {
  task.attempt += 1;
  task.workerId = workerId;
}

/** takenBack: an offer was refused or withdrawn; the task waits for another worker, saying why. */
export function takenBack(task: Task, why: string): void {
  task.error = why;
  task.workerId = '';
}

/** scheduled: the worker accepted (or started) the current attempt. */
export function scheduled(task: Task, now: number): void {
  task.state = TaskState.SCHEDULED;
  task.scheduledUnixMs = BigInt(now);
}

/** startedAt records the process of the current attempt (call orderTimes once the state is settled). */
export function startedAt(task: Task, pid: number, startedUnixMs: bigint): void {
  task.pid = pid;
  task.startedUnixMs = startedUnixMs;
}

/**
 * finish records how the current attempt ended: done, or dead start-failed (it never ran), or
 * dead cancelled (it ran, but not to its end), with how it ended kept either way.
 */
export function finish(task: Task, f: Finished, cancelled: boolean, now: number): void {
  task.state = cancelled || f.startFailed ? TaskState.DEAD : TaskState.DONE;
  if (cancelled) task.deadReason = 'cancelled';
  else if (f.startFailed) task.deadReason = 'start-failed';
  task.exitCode = f.exitCode;
  task.signal = f.signal;
  task.error = f.error;
  task.pid = f.pid;
  if (f.startedUnixMs) task.startedUnixMs = f.startedUnixMs;
  if (!task.scheduledUnixMs) task.scheduledUnixMs = f.startedUnixMs || BigInt(now);
  task.finishedUnixMs = f.finishedUnixMs || BigInt(now);
  orderTimes(task);
  task.stdoutTail = f.stdoutTail;
  task.stderrTail = f.stderrTail;
  task.timedOut = f.timedOut;
  task.oomKilled = f.oomKilled;
  task.peakMemoryBytes = f.peakMemoryBytes;
  task.cpuTimeUs = f.cpuTimeUs;
}

/** retriesLeft: a lost attempt may be run again (the spec's retries are not used up). */
export const retriesLeft = (task: Task): boolean => task.retriesUsed < (task.spec?.retries ?? 0);

/**
 * retried: the worker of the current attempt is lost; the task waits for placement again with a
 * retry used. Its next offer is a new attempt, so a late report of this one is ignored.
 */
export function retried(task: Task, reason: string): void {
  task.retriesUsed += 1;
  task.state = TaskState.PENDING;
  task.error = `${reason} (attempt ${task.attempt}); retry ${task.retriesUsed} of ${task.spec?.retries ?? 0}`;
  task.workerId = '';
  task.pid = 0;
}

/** died: the task never will run (or was stopped). */
export function died(task: Task, reason: string, now: number): void {
  task.state = TaskState.DEAD;
  task.deadReason = reason;
  task.finishedUnixMs = BigInt(now);
}
