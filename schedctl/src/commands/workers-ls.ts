import { create } from '@bufbuild/protobuf';
import { ListWorkersResponseSchema, ManagementService } from '../../../proto/gen/sched/v1/management_pb.js';
import { WorkerSchema, type Worker } from '../../../proto/gen/sched/v1/types_pb.js';
import { agoOfMs, bytes, cores, usedOfTotal, workerStateName } from '../format.js';
import { collect } from '../paging.js';
import { view, type Rows } from '../printers/view.js';
import type { Ctx } from './context.js';

const HEAD = ['ID', 'ADDRESS', 'STATE', 'HOSTNAME', 'CPU', 'MEM', 'TASKS', 'LAST SEEN'];

/**
 * The table, built as the workers come (as tasks-ls.ts's TaskTable, and for
 * the same reason): each worker's cells at once, LAST SEEN once `now` is
 * known, so that each decoded worker can be dropped at once.
 */
class WorkerTable {
  private readonly rowsSoFar: string[][] = [];
  private readonly lastSeen: number[] = [];

  add(w: Worker): void {
    this.rowsSoFar.push([
      w.id,
      w.address,
      workerStateName(w),
      w.hardware?.hostname ?? '',
      usedOfTotal(w.allocated?.millicpu ?? 0n, w.capacity?.millicpu ?? 0n, cores),
      usedOfTotal(w.allocated?.memoryBytes ?? 0n, w.capacity?.memoryBytes ?? 0n, bytes),
      String(w.runningTasks),
    ]);
    this.lastSeen.push(Number(w.lastSeenUnixMs));
  }

  rows(now: number): Rows {
    this.rowsSoFar.forEach((row, i) => row.push(agoOfMs(this.lastSeen[i]!, now)));
    return { kind: 'rows', head: HEAD, rows: this.rowsSoFar };
  }
}

/** `schedctl workers ls` (registered in registry.ts). */
export async function workersLs(ctx: Ctx): Promise<void> {
  const table = ctx.settings().output === 'table' ? new WorkerTable() : undefined;
  // Every page: the manager answers at most 1,000 workers per call (see paging.ts).
  const { items: all } = await collect(
    {
      schema: ListWorkersResponseSchema,
      itemSchema: WorkerSchema,
      listNo: ListWorkersResponseSchema.field.workers.number,
      tokenNo: ListWorkersResponseSchema.field.nextPageToken.number,
      items: (page) => page.workers,
      nextPageToken: (page) => page.nextPageToken,
      fetch: (pageToken) => ctx.unaryBytes(ManagementService.method.listWorkers, { pageToken }),
    },
    0,
    table && ((worker) => table.add(worker)),
  );
  const now = Date.now();
  if (table) {
    // The table printer reads only the rows; the empty message stands for what -o json would print.
    ctx.print(view(ListWorkersResponseSchema, create(ListWorkersResponseSchema), () => table.rows(now)));
    return;
  }
  const rows = new WorkerTable();
  for (const w of all) rows.add(w);
  ctx.print(view(ListWorkersResponseSchema, create(ListWorkersResponseSchema, { workers: all }), () => rows.rows(now)));
}
