import { create } from '@bufbuild/protobuf';
import { ListTasksResponseSchema } from '../../../proto/gen/sched/v1/management_pb.js';
import { TaskState, type Task } from '../../../proto/gen/sched/v1/types_pb.js';
import type { ManagementClient } from '../client.js';
import type { CallOptions } from '../../../common/grpc-service.js';
import {
  age,
  exitSummary,
  shellQuote,
  taskDuration,
  taskReason,
  taskStateFromName,
  taskStateName,
  truncate,
  type TaskStateName,
} from '../format.js';
import { view, type Rows } from '../printers/index.js';
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
 * Pages through ListTasks until `limit` tasks are collected or the server has
 * no more; `more` says whether tasks were left out.
 */
export async function listTasks(client: ManagementClient, filter: ListFilter, opts: CallOptions): Promise<{ tasks: Task[]; more: boolean }> {
  const tasks: Task[] = [];
  let pageToken = '';
  for (;;) {
    const room = filter.limit === 0 ? Infinity : filter.limit - tasks.length;
    const page = await client.listTasks(
      { state: filter.state, workerId: filter.workerId, groupId: filter.groupId, limit: filter.limit === 0 ? 0 : room, pageToken },
      opts,
    );
    tasks.push(...page.tasks.slice(0, room));
    const next = page.nextPageToken;
    // No token, an empty page or a token that does not move: the end (never loop forever).
    const end = !next || page.tasks.length === 0 || next === pageToken;
    if (page.tasks.length >= room) return { tasks, more: page.tasks.length > room || !end };
    if (end) return { tasks, more: false };
    pageToken = next;
  }
}

/** Longest REASON shown in the table; tasks show has the whole text. */
const REASON_WIDTH = 50;

/**
 * The table: the fixed columns, plus PRI when any task has a priority and
 * GROUP when any task belongs to a group (and the list is not one group).
 */
export function taskRows(list: readonly Task[], now: number, opts: { groupFilter: boolean }): Rows {
  const showPriority = list.some((t) => (t.spec?.priority ?? 0) !== 0);
  const showGroup = !opts.groupFilter && list.some((t) => t.groupId !== '');
  const head = ['ID', 'STATE', ...(showPriority ? ['PRI'] : []), 'WORKER', 'EXIT', 'REASON', 'COMMAND', 'AGE', 'DURATION', ...(showGroup ? ['GROUP'] : [])];
  return {
    kind: 'rows',
    head,
    rows: list.map((t) => [
      t.id,
      taskStateName(t.state),
      ...(showPriority ? [String(t.spec?.priority ?? 0)] : []),
      t.workerId,
      exitSummary(t),
      truncate(taskReason(t), REASON_WIDTH),
      truncate(shellQuote(t.spec?.argv ?? []), 60),
      age(t.createdUnixMs, now),
      taskDuration(t, now),
      ...(showGroup ? [t.groupId] : []),
    ]),
  };
}

/** `schedctl tasks ls` (registered in registry.ts). */
export async function tasksLs(ctx: Ctx, opts: { state?: TaskStateName; worker?: string; group?: string; limit: number }): Promise<void> {
  const filter: ListFilter = {
    state: opts.state ? taskStateFromName(opts.state) : TaskState.UNSPECIFIED,
    workerId: opts.worker ?? '',
    groupId: opts.group ?? '',
    limit: opts.limit,
  };
  const { tasks: list, more } = await listTasks(ctx.client(), filter, ctx.unary());
  const now = Date.now();
  ctx.print(
    view(ListTasksResponseSchema, create(ListTasksResponseSchema, { tasks: list }), () =>
      taskRows(list, now, { groupFilter: filter.groupId !== '' }),
    ),
  );
  if (more && ctx.settings().output === 'table') {
    ctx.io.err(`schedctl: showing the first ${filter.limit} tasks; use --limit to see more (0 = all)\n`);
  }
}
