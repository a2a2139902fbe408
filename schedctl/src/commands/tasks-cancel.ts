import { TaskState, type Task } from '../../../proto/gen/sched/v1/types_pb.js';
import { taskStateName } from '../format.js';
import type { Ctx } from './context.js';
import { waitForTask } from '../wait.js';

export { parseGrace } from '../flags.js';

function outcome(t: Task): string {
  if (t.state === TaskState.DEAD && t.deadReason === 'cancelled') return t.signal ? `cancelled (${t.signal})` : 'cancelled';
  return `not cancelled: already ${taskStateName(t.state)}${t.deadReason ? ` (${t.deadReason})` : ''}`;
}

/** `schedctl tasks cancel` (registered in registry.ts). */
export async function tasksCancel(ctx: Ctx, ids: string[], opts: { grace?: number; wait: boolean }): Promise<void> {
  const { tasks: accepted } = await ctx.client().cancelTask({ ids, graceMs: opts.grace ?? 0 }, ctx.unary());
  for (const task of accepted) {
    let t = task;
    if (t.state === TaskState.SCHEDULED) {
      if (!opts.wait) {
        ctx.io.out(`${t.id} cancelling\n`);
        continue;
      }
      t = await waitForTask(ctx, t.id, 30_000);
    }
    ctx.io.out(`${t.id} ${outcome(t)}\n`);
  }
}
