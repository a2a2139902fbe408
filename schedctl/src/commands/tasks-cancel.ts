import type { Command } from 'commander';
import { MAX_UINT32_MS } from '../../../common/duration.js';
import { TaskState, type Task } from '../../../proto/gen/sched/v1/types_pb.js';
import { taskStateName } from '../format.js';
import type { Ctx } from './context.js';
import { waitForTask } from '../wait.js';
import { parseDurationFlag } from './tasks-run.js';

/**
 * --grace: SIGTERM → SIGKILL, at most what grace_ms (a uint32) holds, about
 * 49.7 days. Not 0: grace_ms 0 means "the worker's cancel_grace", not "kill at once".
 */
export const parseGrace = (value: string): number => parseDurationFlag(value, { min: 1, max: MAX_UINT32_MS });

function outcome(t: Task): string {
  if (t.state === TaskState.DEAD && t.deadReason === 'cancelled') return t.signal ? `cancelled (${t.signal})` : 'cancelled';
  return `not cancelled: already ${taskStateName(t.state)}${t.deadReason ? ` (${t.deadReason})` : ''}`;
}

export function registerTasksCancel(tasks: Command, ctx: Ctx): void {
  tasks
    .command('cancel')
    .description('stops tasks: a pending task ends dead at once; a running one gets SIGTERM, SIGKILL after the grace')
    .argument('<id...>', 'task ids')
    .option('--grace <duration>', 'time between SIGTERM and SIGKILL, e.g. 10s (default: the worker\'s cancel_grace)', parseGrace)
    .option('--no-wait', 'return once the cancel is stored, without waiting for running tasks to stop')
    .action(async (ids: string[], opts: { grace?: number; wait: boolean }) => {
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
    });
}
