// schedctl tasks ls: newest first (the management node's order), as many as
// --limit (100) unless --all, and a line on stderr when more match than it
// shows. The table is built as the pages come (tasks-table.ts).
import { create } from '@bufbuild/protobuf';
import { ListTasksResponseSchema, ManagementService } from '../../../proto/gen/schedapi/v1/management_pb.js';
import { TaskOutcome, TaskSchema, TaskState, type Task } from '../../../proto/gen/schedapi/v1/types_pb.js';
import type { OutcomeName, TaskStateChoice } from '../flags.js';
import { outcomeFromName, taskStateFromName } from '../format.js';
import { collect, type BytesCall } from '../paging.js';
import { view } from '../printers/view.js';
import type { Ctx } from './context.js';
import { DEFAULT_WIDTH, TaskTable, taskRows } from './tasks-table.js';

export { parseLimit } from '../flags.js';
export { TaskTable, taskRows };

export interface ListFilter {
  state: TaskState;
  outcome: TaskOutcome;
  workerId: string;
  /** Only tasks of this group (tasks run --count); empty means all. */
  groupId: string;
  /** Only the runs of this schedule; empty means all. */
  schedule?: string;
  /** 0 means no limit. */
  limit: number;
  oldestFirst: boolean;
}

/**
 * Tasks asked for per ListTasks call: the management node's most
 * (management-node/src/listing.ts MAX_PAGE; it caps a larger limit). A
 * request with limit 0 gets its default page of 100, so `--limit 0` over
 * 10,000 tasks took 100 round trips instead of 10.
 */
export const PAGE_LIMIT = 1000;

/**
 * Pages through ListTasks until `limit` tasks are collected or the server has
 * no more; `more` says whether tasks were left out (see paging.ts), `total`
 * how many match in all. With `each`, the tasks go to it one by one as they
 * come (`tasks` is then empty).
 */
export async function listTasks(
  call: BytesCall,
  filter: ListFilter,
  each?: (task: Task) => void,
): Promise<{ tasks: Task[]; more: boolean; total: number }> {
  const { state, outcome, workerId, groupId, oldestFirst, schedule = '' } = filter;
  const { items, more, total } = await collect(
    {
      schema: ListTasksResponseSchema,
      itemSchema: TaskSchema,
      listNo: ListTasksResponseSchema.field.tasks.number,
      tokenNo: ListTasksResponseSchema.field.nextPageToken.number,
      total: { no: ListTasksResponseSchema.field.total.number, of: (page) => page.total },
      items: (page) => page.tasks,
      nextPageToken: (page) => page.nextPageToken,
      fetch: (pageToken, room) =>
        call(ManagementService.method.listTasks, { state, outcome, workerId, groupId, schedule, oldestFirst, limit: Math.min(room, PAGE_LIMIT), pageToken }),
    },
    filter.limit,
    each,
  );
  return { tasks: items, more, total };
}

export interface TasksLsOptions {
  state?: TaskStateChoice;
  outcome?: OutcomeName;
  worker?: string;
  group?: string;
  schedule?: string;
  limit: number;
  all?: boolean;
  oldestFirst?: boolean;
  watch?: boolean;
}

/** "showing 100 of 1,048 (newest first); --all for all, --limit N for more", or undefined when all are shown. */
export function shownOf(shown: number, total: number, more: boolean, oldestFirst: boolean): string | undefined {
  if (!more && total <= shown) return undefined;
  const of = total > shown ? total.toLocaleString('en-US') : 'more';
  return `showing ${shown.toLocaleString('en-US')} of ${of} (${oldestFirst ? 'oldest' : 'newest'} first); --all for all, --limit N for more\n`;
}

/** The response -o json and -o yaml print: the tasks and how many match (not the paging fields, which mean nothing here). */
const OMIT = ['nextPageToken', 'revision'] as const;

/** `schedctl tasks ls` (registered in register-tasks.ts). */
export async function tasksLs(ctx: Ctx, opts: TasksLsOptions): Promise<void> {
  if (opts.watch) {
    const state = opts.state === 'running' ? 'scheduled' : opts.state;
    return (await import('./tasks-watch.js')).tasksWatch(ctx, { ...opts, state, limit: opts.all ? 0 : opts.limit });
  }
  const filter: ListFilter = {
    state: opts.state ? taskStateFromName(opts.state) : TaskState.UNSPECIFIED,
    outcome: opts.outcome ? outcomeFromName(opts.outcome) : TaskOutcome.UNSPECIFIED,
    workerId: opts.worker ?? '',
    groupId: opts.group ?? '',
    schedule: opts.schedule ?? '',
    limit: opts.all ? 0 : opts.limit,
    oldestFirst: opts.oldestFirst === true,
  };
  const { output } = ctx.settings();
  const groupFilter = filter.groupId !== '';
  const note = (shown: number, total: number, more: boolean) => {
    const text = shownOf(shown, total, more, filter.oldestFirst);
    if (text) ctx.io.err(text);
  };
  if (output === 'table' || output === 'wide' || output === 'name') {
    // Neither needs the response message: rows (or ids) are made as the pages come (see TaskTable).
    const width = ctx.io.isTTY && process.stdout.columns ? Math.max(DEFAULT_WIDTH, process.stdout.columns) : DEFAULT_WIDTH;
    const table = output === 'name' ? undefined : new TaskTable({ groupFilter, wide: output === 'wide', width });
    const ids: string[] = [];
    let shown = 0;
    const { more, total } = await listTasks(ctx.unaryBytes, filter, (task) => {
      shown++;
      if (table) table.add(task);
      else ids.push(task.id);
    });
    const now = Date.now();
    // The printer reads only the rows (or ids); the empty message stands for what -o json would print.
    ctx.print(view(ListTasksResponseSchema, create(ListTasksResponseSchema), () => table!.rows(now), { names: () => ids }));
    note(shown, total, more);
    return;
  }
  const { tasks: list, total } = await listTasks(ctx.unaryBytes, filter);
  ctx.print(
    view(ListTasksResponseSchema, create(ListTasksResponseSchema, { tasks: list, total: Math.max(total, list.length) }), (wide) => taskRows(list, Date.now(), { groupFilter, wide }), {
      omit: OMIT,
    }),
  );
}
