import { create } from '@bufbuild/protobuf';
import { ListWorkersResponseSchema, ManagementService } from '../../../proto/gen/schedapi/v1/management_pb.js';
import { WorkerSchema, type Worker } from '../../../proto/gen/schedapi/v1/types_pb.js';
import { agoOfMs, bytes, cores, pairs, usedOfTotal, workerName, workerStateName } from '../format.js';
import { collect } from '../paging.js';
import { view, type Rows } from '../printers/view.js';
import type { Ctx } from './context.js';
import { shortWorkerId } from './tasks-table.js';

/** Narrow: short ids (a prefix, which the manager takes), the name, no address: ordinary rows fit 80 columns. */
const HEAD = ['ID', 'NAME', 'STATE', 'CPU', 'MEM', 'TASKS', 'LAST SEEN'];
const WIDE_HEAD = ['ID', 'NAME', 'ADDRESS', 'STATE', 'HOSTNAME', 'CPU', 'MEM', 'TASKS', 'LAST SEEN', 'VERSION', 'LABELS'];
/** Longest NAME in the narrow table; -o wide and workers show have it whole. */
const NAME_WIDTH = 20;

/**
 * The table, built as the workers come (as tasks-table.ts's TaskTable, and for
 * the same reason): each worker's cells at once, LAST SEEN once `now` is
 * known, so that each decoded worker can be dropped at once.
 */
export class WorkerTable {
  private readonly rowsSoFar: string[][] = [];
  private readonly lastSeen: number[] = [];

  constructor(private readonly wide = false) {}

  add(w: Worker): void {
    const cpu = usedOfTotal(w.allocated?.millicpu ?? 0n, w.capacity?.millicpu ?? 0n, cores);
    const mem = usedOfTotal(w.allocated?.memoryBytes ?? 0n, w.capacity?.memoryBytes ?? 0n, bytes);
    const name = workerName(w);
    this.rowsSoFar.push(
      this.wide
        ? [w.id, name, w.address, workerStateName(w), w.hardware?.hostname ?? '', cpu, mem, String(w.runningTasks)]
        : [shortWorkerId(w.id), name.length > NAME_WIDTH ? `${name.slice(0, NAME_WIDTH - 1)}…` : name, workerStateName(w), cpu, mem, String(w.runningTasks)],
    );
    if (this.wide) this.rowsSoFar.at(-1)!.push('', w.version, pairs(w.labels));
    this.lastSeen.push(Number(w.lastSeenUnixMs));
  }

  rows(now: number): Rows {
    const at = this.wide ? 8 : 6;
    this.rowsSoFar.forEach((row, i) => (row[at] = agoOfMs(this.lastSeen[i]!, now)));
    return { kind: 'rows', head: this.wide ? WIDE_HEAD : HEAD, rows: this.rowsSoFar };
  }
}

/** `schedctl workers ls` (registered in register-workers.ts). */
export async function workersLs(ctx: Ctx): Promise<void> {
  const { output } = ctx.settings();
  const table = output === 'table' || output === 'wide' ? new WorkerTable(output === 'wide') : undefined;
  const ids: string[] = [];
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
    table ? (worker) => table.add(worker) : output === 'name' ? (worker) => ids.push(worker.id) : undefined,
  );
  const now = Date.now();
  if (table || output === 'name') {
    // The printer reads only the rows (or ids); the empty message stands for what -o json would print.
    ctx.print(view(ListWorkersResponseSchema, create(ListWorkersResponseSchema), () => table!.rows(now), { names: () => ids }));
    return;
  }
  ctx.print(
    view(
      ListWorkersResponseSchema,
      create(ListWorkersResponseSchema, { workers: all }),
      (wide) => {
        const rows = new WorkerTable(wide);
        for (const w of all) rows.add(w);
        return rows.rows(now);
      },
      { omit: ['nextPageToken'] },
    ),
  );
}
