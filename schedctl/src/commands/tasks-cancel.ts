import { create } from '@bufbuild/protobuf';
import type { Command } from 'commander';
import { CancelTaskResponseSchema, type CancelTaskResponse } from '../../../proto/gen/schedapi/v1/management_pb.js';
import { TaskState, type Task } from '../../../proto/gen/schedapi/v1/types_pb.js';
import { taskStateName } from '../format.js';
import { view } from '../printers/view.js';
import { isFinished, waitForTasks } from '../wait.js';
import type { Ctx } from './context.js';

export { parseGrace } from '../flags.js';

/** Ids per CancelTask call of --all (one request stays well under a message's size). */
export const CANCEL_BATCH = 500;
/** ListTasks page size while --all collects the tasks (the manager's largest page). */
const LIST_PAGE = 1000;

export interface CancelOptions {
  grace?: number;
  wait: boolean;
  all?: boolean;
  group?: string;
  state?: 'pending' | 'scheduled' | 'running';
  worker?: string;
  yes?: boolean;
}

function outcome(t: Task): string {
  if (t.state === TaskState.DEAD && t.deadReason === 'cancelled') return t.signal ? `cancelled (${t.signal})` : 'cancelled';
  return `not cancelled: already ${taskStateName(t.state)}${t.deadReason ? ` (${t.deadReason})` : ''}`;
}

/** The ids of the tasks --all means: not ended, and matching every filter given. */
async function selectTasks(ctx: Ctx, opts: CancelOptions): Promise<string[]> {
  const states = opts.state === 'pending' ? [TaskState.PENDING] : opts.state ? [TaskState.SCHEDULED] : [TaskState.PENDING, TaskState.SCHEDULED];
  const ids: string[] = [];
  for (const state of states) {
    let pageToken = '';
    do {
      const page = await ctx
        .client()
        .listTasks({ state, groupId: opts.group ?? '', workerId: opts.worker ?? '', limit: LIST_PAGE, pageToken }, ctx.unary());
      ids.push(...page.tasks.filter((t) => !isFinished(t)).map((t) => t.id));
      pageToken = page.nextPageToken;
    } while (pageToken !== '');
  }
  return ids;
}

/** Refuses what cannot be meant (a usage error, exit 2). */
function checkUsage(cmd: Command, ids: string[], opts: CancelOptions): void {
  const filters = [opts.group && '--group', opts.state && '--state', opts.worker && '--worker'].filter(Boolean);
  let problem: string | undefined;
  if (opts.all && ids.length > 0) problem = 'give task ids or --all, not both';
  else if (!opts.all && ids.length === 0) problem = 'name the tasks to cancel (ids), or --all with --group, --state or --worker';
  else if (!opts.all && filters.length > 0) problem = `${filters.join(', ')} select tasks for --all; add --all`;
  else if (opts.all && filters.length === 0 && !opts.yes) {
    problem = '--all with no --group, --state or --worker cancels every task that has not ended; add --yes to do that';
  }
  if (problem !== undefined) cmd.error(`error: ${problem}`, { code: 'commander.usage' });
}

/**
 * `schedctl tasks cancel` (registered in register-tasks.ts). Every valid id is
 * cancelled; the manager names each id that named no task (or several) in the
 * response's errors, and then the exit code is 1. --all lists the tasks that
 * match its filters, then cancels them in batches.
 */
export async function tasksCancel(ctx: Ctx, refs: string[], opts: CancelOptions, cmd: Command): Promise<void> {
  checkUsage(cmd, refs, opts);
  const ids = opts.all ? await selectTasks(ctx, opts) : refs;
  const { output } = ctx.settings();
  const lines = output === 'table' || output === 'wide';
  if (ids.length === 0) {
    ctx.io.err('schedctl: no task matches; nothing to cancel\n');
    if (!lines) ctx.print(view(CancelTaskResponseSchema, create(CancelTaskResponseSchema), () => ({ kind: 'rows', head: [], rows: [] })));
    return;
  }
  const graceMs = opts.grace ?? 0;
  const res = create(CancelTaskResponseSchema);
  for (let i = 0; i < ids.length; i += CANCEL_BATCH) {
    const part: CancelTaskResponse = await ctx.client().cancelTask({ ids: ids.slice(i, i + CANCEL_BATCH), graceMs }, ctx.unary());
    res.tasks.push(...part.tasks);
    res.errors.push(...part.errors);
  }
  for (const e of res.errors) ctx.io.err(`schedctl: ${e.id}: ${e.message}\n`);
  if (res.errors.length > 0) ctx.exit(1);

  // Running tasks are stopping: their end (SIGTERM, then SIGKILL after the grace) is what the operator waits for.
  const stopping = res.tasks.filter((t) => t.state === TaskState.SCHEDULED).map((t) => t.id);
  if (opts.wait && stopping.length > 0) {
    const ended = new Map((await waitForTasks(ctx, stopping)).map((t) => [t.id, t]));
    res.tasks = res.tasks.map((t) => ended.get(t.id) ?? t);
  }
  if (!lines) {
    ctx.print(view(CancelTaskResponseSchema, res, () => ({ kind: 'rows', head: [], rows: [] })));
    return;
  }
  ctx.io.out(res.tasks.map((t) => `${t.id} ${t.state === TaskState.SCHEDULED ? 'cancelling' : outcome(t)}\n`).join(''));
}
