import { create } from '@bufbuild/protobuf';
import { ListWorkersResponseSchema } from '../../../proto/gen/sched/v1/management_pb.js';
import type { Worker } from '../../../proto/gen/sched/v1/types_pb.js';
import { ago, bytes, cores, usedOfTotal, workerStateName } from '../format.js';
import { view } from '../printers/index.js';
import type { Ctx } from './context.js';

/** `schedctl workers ls` (registered in registry.ts). */
export async function workersLs(ctx: Ctx): Promise<void> {
  // Every page: the manager answers at most 1,000 workers per call.
  const all: Worker[] = [];
  let pageToken = '';
  do {
    const page = await ctx.client().listWorkers({ pageToken }, ctx.unary());
    all.push(...page.workers);
    pageToken = page.nextPageToken;
  } while (pageToken);
  const res = create(ListWorkersResponseSchema, { workers: all });
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
}
