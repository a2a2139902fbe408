import { create } from '@bufbuild/protobuf';
import { ListTasksResponseSchema, ManagementService } from '../../../proto/gen/sched/v1/management_pb.js';
import { TaskSchema, TaskState, type Task } from '../../../proto/gen/sched/v1/types_pb.js';
import {
  ageOfMs,
  exitSummary,
  runTimeOfMs,
  shellQuote,
  taskReason,
  taskStateFromName,
  taskStateName,
  truncate,
  type TaskStateName,
} from '../format.js';
import { collect, type BytesCall } from '../paging.js';
import { view, type Rows } from '../printers/view.js';
import type { Ctx } from './context.js';

export { parseLimit } from '../flags.js';

export interface ListFilter {
  state: TaskState;
  workerId: string;
  /** Only tasks of this group (tasks run --count); empty means all. */
  groupId: string;
  /** 0 means no limit. */
  limit: number;
}

/**
 * Tasks asked for per ListTasks call: the management node's most
 * (management-node/src/server/management-service.ts MAX_PAGE; it caps a
 * larger limit). A request with limit 0 gets its default page of 100, so
 * `--limit 0` over 10,000 tasks took 100 round trips (each a scan of the
 * manager's tasks up to the page token) instead of 10.
 */
export const PAGE_LIMIT = 1000;

/**
 * Pages through ListTasks until `limit` tasks are collected or the server has
 * no more; `more` says whether tasks were left out (see paging.ts). With
 * `each`, the tasks go to it one by one as they come (`tasks` is then empty).
 */
export async function listTasks(call: BytesCall, filter: ListFilter, each?: (task: Task) => void): Promise<{ tasks: Task[]; more: boolean }> {
  const { state, workerId, groupId } = filter;
  const { items, more } = await collect(
    {
      schema: ListTasksResponseSchema,
      itemSchema: TaskSchema,
      listNo: ListTasksResponseSchema.field.tasks.number,
      tokenNo: ListTasksResponseSchema.field.nextPageToken.number,
      items: (page) => page.tasks,
      nextPageToken: (page) => page.nextPageToken,
      fetch: (pageToken, room) => call(ManagementService.method.listTasks, { state, workerId, groupId, limit: Math.min(room, PAGE_LIMIT), pageToken }),
    },
    filter.limit,
    each,
  );
  return { tasks: items, more };
}

/** Longest REASON shown in the table; tasks show has the whole text. */
const REASON_WIDTH = 50;

/**
 * The table: the fixed columns, plus PRI when any task has a priority and
 * GROUP when any task belongs to a group (and the list is not one group).
 *
 * Built as the tasks come, one at a time (paging.ts): each task's cells are
 * made at once and its times kept as numbers; only AGE and DURATION wait for
 * `now`, and PRI and GROUP for the last task (to know whether they show).
 * The listing can then drop each decoded task: kept, 10,000 of them (~15
 * objects each) were copied by the garbage collector from young to old
 * space as the table was built, which cost more than building it.
 */
export class TaskTable {
  /** Per task: ID, STATE, WORKER, EXIT, REASON, COMMAND; the row itself once rows() adds the rest. */
  private readonly cells: string[][] = [];
  private readonly priority: string[] = [];
  private readonly group: string[] = [];
  private readonly created: number[] = [];
  private readonly started: number[] = [];
  private readonly finished: number[] = [];
  private anyPriority = false;
  private anyGroup = false;

  constructor(private readonly groupFilter: boolean) {}

  add(t: Task): void {
    const priority = t.spec?.priority ?? 0;
    if (priority !== 0) this.anyPriority = true;
    if (t.groupId !== '') this.anyGroup = true;
    this.cells.push([
      t.id,
      taskStateName(t.state),
      t.workerId,
      exitSummary(t),
      truncate(taskReason(t), REASON_WIDTH),
      truncate(shellQuote(t.spec?.argv ?? []), 60),
    ]);
    this.priority.push(String(priority));
    this.group.push(t.groupId);
    this.created.push(Number(t.createdUnixMs));
    this.started.push(Number(t.startedUnixMs));
    this.finished.push(Number(t.finishedUnixMs));
  }

  /** The rows, made of the cells in place (call once). */
  rows(now: number): Rows {
    const showPriority = this.anyPriority;
    const showGroup = !this.groupFilter && this.anyGroup;
    const head = ['ID', 'STATE', ...(showPriority ? ['PRI'] : []), 'WORKER', 'EXIT', 'REASON', 'COMMAND', 'AGE', 'DURATION', ...(showGroup ? ['GROUP'] : [])];
    this.cells.forEach((row, i) => {
      if (showPriority) row.splice(2, 0, this.priority[i]!);
      row.push(ageOfMs(this.created[i]!, now), runTimeOfMs(this.started[i]!, this.finished[i]!, now));
      if (showGroup) row.push(this.group[i]!);
    });
    return { kind: 'rows', head, rows: this.cells };
  }
}

export function taskRows(list: readonly Task[], now: number, opts: { groupFilter: boolean }): Rows {
  const table = new TaskTable(opts.groupFilter);
  for (const t of list) table.add(t);
  return table.rows(now);
}

/** `schedctl tasks ls` (registered in registry.ts). */
export async function tasksLs(ctx: Ctx, opts: { state?: TaskStateName; worker?: string; group?: string; limit: number }): Promise<void> {
  const filter: ListFilter = {
    state: opts.state ? taskStateFromName(opts.state) : TaskState.UNSPECIFIED,
    workerId: opts.worker ?? '',
    groupId: opts.group ?? '',
    limit: opts.limit,
  };
  const groupFilter = filter.groupId !== '';
  if (ctx.settings().output === 'table') {
    // The table needs no response message: rows are made as the pages come (see TaskTable).
    const table = new TaskTable(groupFilter);
    const { more } = await listTasks(ctx.unaryBytes, filter, (task) => table.add(task));
    const now = Date.now();
    // The table printer reads only the rows; the empty message stands for what -o json would print.
    ctx.print(view(ListTasksResponseSchema, create(ListTasksResponseSchema), () => table.rows(now)));
    if (more) ctx.io.err(`schedctl: showing the first ${filter.limit} tasks; use --limit to see more (0 = all)\n`);
    return;
  }
  const { tasks: list } = await listTasks(ctx.unaryBytes, filter);
  const now = Date.now();
  ctx.print(view(ListTasksResponseSchema, create(ListTasksResponseSchema, { tasks: list }), () => taskRows(list, now, { groupFilter })));
}
