import type { Command } from 'commander';
import { ListWorkersResponseSchema } from '../../../proto/gen/sched/v1/management_pb.js';
import { ago, bytes, cores, usedOfTotal, workerStateName } from '../format.js';
import { view } from '../printers/index.js';
import type { Ctx } from './context.js';

export function registerWorkersLs(workers: Command, ctx: Ctx): void {
  workers
    .command('ls')
    .description('shows all the remote linux machines that were and are connected to the management node')
    .action(async () => {
      const res = await ctx.client().listWorkers({}, ctx.unary());
      const now = Date.now();
      ctx.print(
        view(ListWorkersResponseSchema, res, () => ({
          kind: 'rows',
          head: ['ID', 'ADDRESS', 'STATE', 'HOSTNAME', 'CPU', 'MEM', 'TASKS', 'LAST SEEN'],
          rows: res.workers.map((w) => [
            w.id,
            w.address,
            workerStateName(w),
            w.hardware?.hostname ?? '',
            usedOfTotal(w.allocated?.millicpu ?? 0n, w.capacity?.millicpu ?? 0n, cores),
            usedOfTotal(w.allocated?.memoryBytes ?? 0n, w.capacity?.memoryBytes ?? 0n, bytes),
            String(w.runningTasks),
            ago(w.lastSeenUnixMs, now),
          ]),
        })),
      );
    });
}
