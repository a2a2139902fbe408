import { TaskSchema } from '../../../proto/gen/schedapi/v1/types_pb.js';
import { view } from '../printers/view.js';
import type { Ctx } from './context.js';
import { printSchedule } from './schedules-ls.js';
import { taskFields } from './tasks-show.js';

/** `schedctl schedules rm NAME` (registered in register-schedules.ts): prints the schedule as it was. */
export async function schedulesRm(ctx: Ctx, name: string): Promise<void> {
  const { schedule } = await ctx.client().deleteSchedule({ name }, ctx.unary());
  if (schedule) printSchedule(ctx, schedule);
}

/** `schedctl schedules pause NAME` / `resume NAME`. */
export async function schedulesPause(ctx: Ctx, name: string, pause: boolean): Promise<void> {
  const { schedule } = await ctx.client().pauseSchedule({ name, pause }, ctx.unary());
  if (schedule) printSchedule(ctx, schedule);
}

/**
 * `schedctl schedules trigger NAME`: runs it once now. Prints the task id (its task under
 * -o json/yaml); when the overlap policy skipped the run, says so on stderr and exits 1.
 */
export async function schedulesTrigger(ctx: Ctx, name: string): Promise<void> {
  const { task, schedule } = await ctx.client().triggerSchedule({ name }, ctx.unary());
  if (!task) {
    const running = schedule?.runs.find((r) => r.taskId)?.taskId ?? '';
    throw new Error(`schedule ${name}: run skipped: the previous run${running ? ` (${running})` : ''} has not ended (overlap skip)`);
  }
  const { output } = ctx.settings();
  if (output !== 'json' && output !== 'yaml') ctx.io.out(`${task.id}\n`);
  else ctx.print(view(TaskSchema, task, () => taskFields(task, Date.now())));
}
