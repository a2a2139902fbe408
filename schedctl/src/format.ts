// Display helpers shared by the commands: state names, times, sizes, argv.
import { TaskOutcome, TaskState, WorkerState, type Task, type Worker } from '../../proto/gen/schedapi/v1/types_pb.js';
import { formatDuration, formatDurationExact } from '../../common/duration.js';
import { outcomeOf } from '../../common/outcome.js';
import { OUTCOME_NAMES, TASK_STATE_NAMES, type OutcomeName, type TaskStateChoice, type TaskStateName } from './flags.js';

/** The CLI's names for task states, as the operator types them after --state (in flags.ts, for commander). */
export { TASK_STATE_NAMES, type TaskStateName };

const TASK_STATE_BY_NAME: Record<TaskStateName, TaskState> = {
  pending: TaskState.PENDING,
  scheduled: TaskState.SCHEDULED,
  done: TaskState.DONE,
  dead: TaskState.DEAD,
};

export function taskStateFromName(name: TaskStateChoice): TaskState {
  return TASK_STATE_BY_NAME[name === 'running' ? 'scheduled' : name];
}

/** TaskOutcome by OUTCOME_NAMES' order (the enum counts from 1). */
const OUTCOMES: readonly TaskOutcome[] = [TaskOutcome.SUCCEEDED, TaskOutcome.FAILED, TaskOutcome.TIMED_OUT, TaskOutcome.CANCELLED, TaskOutcome.LOST];

export const outcomeFromName = (name: OutcomeName): TaskOutcome => OUTCOMES[OUTCOME_NAMES.indexOf(name)]!;

/** The outcome's name ("timed-out"), or "" while the task has not ended. */
export function outcomeName(task: Task): string {
  const i = OUTCOMES.indexOf(outcomeOf(task));
  return i < 0 ? '' : OUTCOME_NAMES[i]!;
}

export function taskStateName(state: TaskState): string {
  return TASK_STATE_NAMES.find((n) => TASK_STATE_BY_NAME[n] === state) ?? 'unknown';
}

export function workerStateName(worker: Pick<Worker, 'state' | 'draining' | 'leaving'>): string {
  const base =
    worker.state === WorkerState.CONNECTED ? 'connected' : worker.state === WorkerState.DISCONNECTED ? 'disconnected' : 'unknown';
  const leaving = worker.leaving && worker.state === WorkerState.CONNECTED ? ',leaving' : '';
  return `${base}${worker.draining ? ',draining' : ''}${leaving}`;
}

/** What operators call a worker: its name, else its hostname (a manager from before names), else its id. */
export function workerName(w: Pick<Worker, 'name' | 'id'> & { hardware?: { hostname: string } | undefined }): string {
  return w.name || w.hardware?.hostname || w.id;
}

/** "1.5/4" cores or "256Mi/1Gi": what is reserved of what there is. */
export function usedOfTotal(used: bigint, total: bigint, unit: (n: bigint) => string): string {
  if (total <= 0n) return '-';
  return `${used > 0n ? unit(used) : '0'}/${unit(total)}`;
}

/** int64 milliseconds since the epoch; 0 means "never" in proto3. */
export function isoTime(unixMs: bigint): string {
  return unixMs > 0n ? new Date(Number(unixMs)).toISOString() : '-';
}

/** Coarse age like kubectl's ("42s", "5m", "3h", "2d"): a table wants one short token. */
export function age(unixMs: bigint, nowMs: number): string {
  return ageOfMs(Number(unixMs), nowMs);
}

/**
 * age() of a time already made a Number: the listings keep times as numbers
 * (no BigInt object per row) until they know `now`. Number() keeps the sign,
 * and age() itself reads the time as a Number.
 */
export function ageOfMs(unixMs: number, nowMs: number): string {
  if (unixMs <= 0) return '-';
  const s = Math.max(0, Math.floor((nowMs - unixMs) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

/** ISO time and how far off it is, past or future: "… (5m ago)", "… (in 5m)". */
export function timeFromNow(unixMs: bigint, nowMs: number): string {
  if (unixMs <= 0n) return '-';
  const ms = Number(unixMs);
  return ms >= nowMs ? `${isoTime(unixMs)} (in ${ageOfMs(2 * nowMs - ms, nowMs)})` : `${isoTime(unixMs)} (${ageOfMs(ms, nowMs)} ago)`;
}

/** ISO time plus age, for the show commands. */
export function timeWithAge(unixMs: bigint, nowMs: number): string {
  return unixMs > 0n ? `${isoTime(unixMs)} (${age(unixMs, nowMs)} ago)` : '-';
}

/** Run time of a task: finished − started, or so far if it still runs. */
export function taskDuration(task: Task, nowMs: number): string {
  return runTimeOfMs(Number(task.startedUnixMs), Number(task.finishedUnixMs), nowMs);
}

/** taskDuration() of times already made Numbers (see ageOfMs). */
export function runTimeOfMs(startedMs: number, finishedMs: number, nowMs: number): string {
  if (startedMs <= 0) return '-';
  const end = finishedMs > 0 ? finishedMs : nowMs;
  return formatDuration(Math.max(0, end - startedMs));
}

/** The EXIT column: exit code (with the signal if any) for done tasks; the REASON column says why others have none. */
export function exitSummary(task: Task): string {
  if (task.state !== TaskState.DONE) return '-';
  return task.signal ? `${task.exitCode} (${task.signal})` : String(task.exitCode);
}

/**
 * The REASON column: why a pending task is not placed yet, why a dead one
 * will never run, or the error that kept a done one from starting.
 */
export function taskReason(task: Task): string {
  switch (task.state) {
    case TaskState.PENDING:
      return task.pendingReason;
    case TaskState.DEAD:
      return task.deadReason;
    case TaskState.DONE:
      // A timeout is how it ended, not just an exit code: say so.
      if (task.oomKilled) return task.error || 'out of memory';
      if (task.timedOut) return `timed out after ${formatDurationExact(task.spec?.timeoutMs ?? 0)}${task.error ? `: ${task.error}` : ''}`;
      return task.error;
    default:
      return '';
  }
}

export function bytes(n: bigint): string {
  if (n <= 0n) return '-';
  const units = ['B', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi'];
  let value = Number(n);
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  return i === 0 ? `${value}B` : `${value < 10 ? value.toFixed(1) : Math.round(value)}${units[i]}`;
}

/** Millicpu as cores ("2", "1.5"): what operators think in. */
export function cores(millicpu: bigint): string {
  if (millicpu <= 0n) return '-';
  return String(Number(millicpu) / 1000);
}

/** argv as a shell would need it typed, so a displayed command can be copied back. */
export function shellQuote(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** Labels and env as sorted k=v pairs: stable output for diffs and tests. */
export function pairs(map: Record<string, string>): string {
  const entries = Object.entries(map).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return entries.length ? entries.map(([k, v]) => `${k}=${v}`).join(', ') : '-';
}

/** "5s ago" for tables; "-" when it never happened. */
export function ago(unixMs: bigint, nowMs: number): string {
  return agoOfMs(Number(unixMs), nowMs);
}

/** ago() of a time already made a Number (see ageOfMs). */
export function agoOfMs(unixMs: number, nowMs: number): string {
  return unixMs > 0 ? `${ageOfMs(unixMs, nowMs)} ago` : '-';
}
