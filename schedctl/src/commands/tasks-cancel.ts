import * as grpc from '@grpc/grpc-js';
import { TaskState, type Task } from '../../../proto/gen/sched/v1/types_pb.js';
import { taskStateName } from '../format.js';
import type { Ctx } from './context.js';
import { waitForTask } from '../wait.js';

export { parseGrace } from '../flags.js';

function outcome(t: Task): string {
  if (t.state === TaskState.DEAD && t.deadReason === 'cancelled') return t.signal ? `cancelled (${t.signal})` : 'cancelled';
  return `not cancelled: already ${taskStateName(t.state)}${t.deadReason ? ` (${t.deadReason})` : ''}`;
}

/**
 * `schedctl tasks cancel` (registered in registry.ts). Every valid id is cancelled:
 * the manager refuses a whole request naming an unknown task, so then each id is
 * sent on its own, each unknown one reported, and the exit code is 1.
 */
export async function tasksCancel(ctx: Ctx, ids: string[], opts: { grace?: number; wait: boolean }): Promise<void> {
  const graceMs = opts.grace ?? 0;
  let accepted: Task[];
  try {
    accepted = (await ctx.client().cancelTask({ ids, graceMs }, ctx.unary())).tasks;
  } catch (err) {
    if ((err as grpc.ServiceError).code !== grpc.status.NOT_FOUND || ids.length < 2) throw err;
    accepted = [];
    for (const id of new Set(ids)) {
      try {
        accepted.push(...(await ctx.client().cancelTask({ ids: [id], graceMs }, ctx.unary())).tasks);
      } catch (one) {
        if ((one as grpc.ServiceError).code !== grpc.status.NOT_FOUND) throw one;
        ctx.io.err(`schedctl: ${(one as grpc.ServiceError).details}\n`);
        ctx.exit(1);
      }
    }
  }
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
