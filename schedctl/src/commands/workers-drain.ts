import { WorkerSchema } from '../../../proto/gen/sched/v1/types_pb.js';
import { workerStateName } from '../format.js';
import { view } from '../printers/view.js';
import type { Ctx } from './context.js';

/** `schedctl workers drain` and `workers undrain`: one command with its inverse (registered in registry.ts). */
export async function workersDrain(ctx: Ctx, drain: boolean, id: string): Promise<void> {
  const { worker: w } = await ctx.client().drainWorker({ id, drain }, ctx.unary());
  if (!w) throw new Error(`management node returned no worker for ${JSON.stringify(id)}`);
  ctx.print(view(WorkerSchema, w, () => ({ kind: 'rows', head: ['ID', 'STATE', 'TASKS'], rows: [[w.id, workerStateName(w), String(w.runningTasks)]] })));
}
