import type { Command } from 'commander';
import { WorkerSchema } from '../../../proto/gen/sched/v1/types_pb.js';
import { workerStateName } from '../format.js';
import { view } from '../printers/index.js';
import type { Ctx } from './context.js';

/** `workers drain` and `workers undrain`: one command with its inverse. */
export function registerWorkersDrain(workers: Command, ctx: Ctx): void {
  for (const drain of [true, false]) {
    workers
      .command(drain ? 'drain' : 'undrain')
      .description(
        drain
          ? 'stops placing new tasks on a worker; its running tasks go on (see: schedctl tasks ls --worker ID)'
          : 'lets a drained worker take new tasks again',
      )
      .argument('<id>', 'worker id (see: schedctl workers ls)')
      .action(async (id: string) => {
        const { worker: w } = await ctx.client().drainWorker({ id, drain }, ctx.unary());
        if (!w) throw new Error(`management node returned no worker for ${JSON.stringify(id)}`);
        ctx.print(view(WorkerSchema, w, () => ({ kind: 'rows', head: ['ID', 'STATE', 'TASKS'], rows: [[w.id, workerStateName(w), String(w.runningTasks)]] })));
      });
  }
}
