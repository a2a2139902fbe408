import { Cron } from 'croner';
import { ScheduleSchema, type Task } from '../../../proto/gen/schedapi/v1/types_pb.js';
import { formatDuration } from '../../../common/duration.js';
import { isoTime, outcomeName, pairs, shellQuote, taskStateName, timeFromNow } from '../format.js';
import { view } from '../printers/view.js';
import type { Ctx } from './context.js';

/** Next times shown. */
const NEXT_RUNS = 5;

/** "done (succeeded)", "pending", or "(removed)" for a task retention has deleted. */
function taskOutcome(task: Task | undefined): string {
  if (!task) return '(removed)';
  const outcome = outcomeName(task);
  return outcome && outcome !== '-' ? `${taskStateName(task.state)} (${outcome})` : taskStateName(task.state);
}

/**
 * `schedctl schedules show NAME` (registered in register-schedules.ts): the schedule, its next
 * times (worked out here from the expression, as the manager does, with croner) and its latest
 * runs with their tasks' states.
 */
export async function schedulesShow(ctx: Ctx, name: string): Promise<void> {
  const client = ctx.client();
  const { schedule: s } = await client.getSchedule({ name }, ctx.unary());
  if (!s) throw new Error(`management node returned no schedule for ${JSON.stringify(name)}`);
  const ids = [...new Set(s.runs.map((r) => r.taskId).filter(Boolean))];
  const tasks = new Map<string, Task>();
  await Promise.all(
    ids.map(async (id) => {
      const task = (await client.getTask({ id }, ctx.unary()).catch(() => undefined))?.task;
      if (task) tasks.set(id, task);
    }),
  );
  const now = Date.now();
  let next: string[] = [];
  if (!s.paused) {
    const from = new Date(Math.max(now, Number(s.lastSlotUnixMs)));
    // In the schedule's zone too: that is where the expression is read (and daylight saving shows).
    const local = s.timeZone ? new Intl.DateTimeFormat('sv-SE', { timeZone: s.timeZone, dateStyle: 'short', timeStyle: 'medium' }) : undefined;
    next = new Cron(s.cron, { timezone: s.timeZone || 'UTC', paused: true })
      .nextRuns(NEXT_RUNS, from)
      .map((d) => `${timeFromNow(BigInt(d.getTime()), now)}${local ? `  ${local.format(d)} ${s.timeZone}` : ''}`);
  }
  const runs = s.runs.map((r) => {
    const task = r.taskId ? taskOutcome(tasks.get(r.taskId)) : '';
    return `${isoTime(r.slotUnixMs)}  ${r.outcome.padEnd(9)}  ${r.taskId || '-'}${task ? `  ${task}` : ''}\n`;
  });
  const spec = s.spec;
  ctx.print(
    view(
      ScheduleSchema,
      s,
      () => ({
        kind: 'fields',
        fields: [
          ['Name', s.name],
          ['Cron', s.cron],
          ['Time zone', s.timeZone || 'UTC'],
          ['State', s.paused ? 'paused' : 'active'],
          ['Overlap', s.overlap],
          ['Starting deadline', s.startingDeadlineMs ? formatDuration(s.startingDeadlineMs) : 'none (missed runs are not made up)'],
          ['History', String(s.history)],
          ['Created', timeFromNow(s.createdUnixMs, now)],
          ['Command', shellQuote(spec?.argv ?? [])],
          ['Cwd', spec?.cwd ?? ''],
          ['Env', pairs(spec?.env ?? {})],
          ['Constraints', pairs(spec?.constraints ?? {})],
          ['Timeout', spec?.timeoutMs ? formatDuration(spec.timeoutMs) : ''],
        ],
        blocks: [
          ...(next.length > 0 ? [{ title: 'Next runs', text: next.map((t) => `${t}\n`).join('') }] : []),
          ...(runs.length > 0 ? [{ title: 'Latest runs (slot, outcome, task)', text: runs.join('') }] : []),
        ],
      }),
      { names: () => [s.name] },
    ),
  );
}
