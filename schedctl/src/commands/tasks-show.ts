import { TaskSchema, TaskState, type Task } from '../../../proto/gen/schedapi/v1/types_pb.js';
import { formatDuration } from '../../../common/duration.js';
import { bytes, cores, isoTime, outcomeName, pairs, shellQuote, taskDuration, taskStateName, timeWithAge } from '../format.js';
import { view, type Fields } from '../printers/view.js';
import type { Ctx } from './context.js';
import { gateFields, relations } from './task-relations.js';

const utf8 = new TextDecoder('utf-8', { fatal: false });

/** "ID (index 3 of 12, at most 4 at once)": the task's group and its place in it. */
function group(t: Task): string {
  if (!t.groupId) return '';
  const place = t.groupSize > 0 ? [`index ${t.groupIndex} of ${t.groupSize}`] : [];
  if (t.spec?.maxParallel) place.push(`at most ${t.spec.maxParallel} at once`);
  return place.length > 0 ? `${t.groupId} (${place.join(', ')})` : t.groupId;
}

/** CPU time as sacct's TotalCPU reads: "1.234s", "2m03.5s". */
export function cpuTime(us: bigint): string {
  const seconds = Number(us) / 1e6;
  if (seconds < 60) return `${seconds.toFixed(3)}s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes}m${(seconds - minutes * 60).toFixed(1).padStart(4, '0')}s`;
}

/** "2 (1 used)": retries allowed and, once any happened, how many were used. */
function retries(t: Task): string {
  const allowed = t.spec?.retries ?? 0;
  return t.retriesUsed > 0 ? `${allowed} (${t.retriesUsed} used)` : String(allowed);
}

export function taskFields(t: Task, now: number): Fields {
  const finished = t.state === TaskState.DONE;
  const spec = t.spec;
  const timeoutMs = spec?.scheduleTimeoutMs ?? 0;
  const blocks: NonNullable<Fields['blocks']> = [];
  if (t.stdoutTail.length) blocks.push({ title: 'Stdout (tail)', text: utf8.decode(t.stdoutTail) });
  if (t.stderrTail.length) blocks.push({ title: 'Stderr (tail)', text: utf8.decode(t.stderrTail) });
  return {
    kind: 'fields',
    fields: [
      ['ID', t.id],
      ['State', taskStateName(t.state)],
      ['Outcome', outcomeName(t)],
      ['Pending reason', t.state === TaskState.PENDING ? t.pendingReason : ''],
      ...gateFields(t, now),
      ['Group', group(t)],
      ['Schedule', t.schedule ? `${t.schedule} (the run for ${isoTime(t.scheduledForUnixMs)})` : ''],
      ['Command', shellQuote(spec?.argv ?? [])],
      ['Cwd', spec?.cwd ?? ''],
      ['Env', pairs(spec?.env ?? {})],
      ['CPU', cores(spec?.resources?.millicpu ?? 0n)],
      ['Memory', bytes(spec?.resources?.memoryBytes ?? 0n)],
      ['User', spec?.user ?? ''],
      ['Max pids', spec?.maxPids ? String(spec.maxPids) : ''],
      ['Constraints', pairs(spec?.constraints ?? {})],
      ['Priority', String(spec?.priority ?? 0)],
      ['Retries', retries(t)],
      ['Strategy', spec?.strategy || 'default'],
      ['Schedule timeout', timeoutMs > 0 ? formatDuration(timeoutMs) : 'none'],
      ['Timeout', spec?.timeoutMs ? formatDuration(spec.timeoutMs) : 'none'],
      ['Worker', t.workerId],
      ['Attempt', t.attempt ? String(t.attempt) : ''],
      ['PID', t.pid ? String(t.pid) : ''],
      // exit_code is 0 by default in proto3: only meaningful once the task is done.
      ['Exit code', finished ? String(t.exitCode) : ''],
      ['Signal', t.signal],
      ['Timed out', t.timedOut ? 'yes' : ''],
      ['Out of memory', t.oomKilled ? 'yes (killed by the kernel at its memory limit)' : ''],
      ['Peak memory', t.peakMemoryBytes > 0n ? bytes(t.peakMemoryBytes) : ''],
      ['CPU time', t.cpuTimeUs > 0n ? cpuTime(t.cpuTimeUs) : ''],
      ['Dead reason', t.deadReason],
      ['Error', t.error],
      ['Created', timeWithAge(t.createdUnixMs, now)],
      ['Scheduled', timeWithAge(t.scheduledUnixMs, now)],
      ['Started', timeWithAge(t.startedUnixMs, now)],
      ['Finished', timeWithAge(t.finishedUnixMs, now)],
      ['Duration', taskDuration(t, now)],
    ],
    blocks,
  };
}

/** `schedctl tasks show` (registered in register-tasks.ts); `id` may be a prefix or the short id. */
export async function tasksShow(ctx: Ctx, id: string): Promise<void> {
  const { task } = await ctx.client().getTask({ id }, ctx.unary());
  if (!task) throw new Error(`management node returned no task for ${JSON.stringify(id)}`);
  const now = Date.now();
  const fields = taskFields(task, now);
  const { output } = ctx.settings();
  // Tables only: the states of its dependencies and its dependents (json and yaml print the task).
  if (output === 'table' || output === 'wide') {
    const known = new Map(await relations(ctx, task));
    fields.fields = fields.fields.map(([k, v]) => [k, known.get(k) ?? v]);
    const at = fields.fields.findIndex(([k]) => k === 'Dependencies');
    fields.fields.splice(at + 1, 0, ['Dependents', known.get('Dependents') ?? '']);
  }
  ctx.print(view(TaskSchema, task, () => fields));
}
