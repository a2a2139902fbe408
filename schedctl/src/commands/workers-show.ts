import type { Command } from 'commander';
import { WorkerSchema } from '../../../proto/gen/sched/v1/types_pb.js';
import { bytes, cores, pairs, timeWithAge, workerStateName } from '../format.js';
import { view } from '../printers/index.js';
import type { Ctx } from './context.js';

export function registerWorkersShow(workers: Command, ctx: Ctx): void {
  workers
    .command('show')
    .description('shows everything the management node knows about one worker')
    .argument('<id>', 'worker id (see: schedctl workers ls)')
    .action(async (id: string) => {
      const { worker: w } = await ctx.client().getWorker({ id }, ctx.unary());
      if (!w) throw new Error(`management node returned no worker for ${JSON.stringify(id)}`);
      const now = Date.now();
      const hw = w.hardware;
      ctx.print(
        view(WorkerSchema, w, () => ({
          kind: 'fields',
          fields: [
            ['ID', w.id],
            ['Address', w.address],
            ['State', workerStateName(w)],
            ['Version', w.version],
            ['Connected', timeWithAge(w.connectedUnixMs, now)],
            ['Last seen', timeWithAge(w.lastSeenUnixMs, now)],
            ['Running tasks', String(w.runningTasks)],
            ['Capacity CPU', cores(w.capacity?.millicpu ?? 0n)],
            ['Capacity memory', bytes(w.capacity?.memoryBytes ?? 0n)],
            ['Labels', pairs(w.labels)],
            ['Hostname', hw?.hostname ?? ''],
            ['OS', [hw?.os, hw?.arch].filter(Boolean).join('/')],
            ['Kernel', hw?.kernel ?? ''],
            ['CPUs', hw?.cpuCount ? `${hw.cpuCount}${hw.cpuModel ? ` × ${hw.cpuModel}` : ''}` : ''],
            ['Memory', bytes(hw?.memoryBytes ?? 0n)],
          ],
        })),
      );
    });
}
