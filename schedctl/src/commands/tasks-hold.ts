// `schedctl tasks hold` and `tasks release` (registered in register-tasks.ts): HoldTask
// for every id at once. Each valid id acts; the manager names each id it could not
// hold or release (none, several, or not pending) in the response's errors, and then
// the exit code is 1, as for tasks cancel.
import { HoldTaskResponseSchema } from '../../../proto/gen/schedapi/v1/management_pb.js';
import { view } from '../printers/view.js';
import type { Ctx } from './context.js';

/** Ids per HoldTask call (one request stays well under a message's size). */
const HOLD_BATCH = 500;

async function holdOrRelease(ctx: Ctx, ids: string[], hold: boolean): Promise<void> {
  const res = await ctx.client().holdTask({ ids: ids.slice(0, HOLD_BATCH), hold }, ctx.unary());
  for (let i = HOLD_BATCH; i < ids.length; i += HOLD_BATCH) {
    const part = await ctx.client().holdTask({ ids: ids.slice(i, i + HOLD_BATCH), hold }, ctx.unary());
    res.tasks.push(...part.tasks);
    res.errors.push(...part.errors);
  }
  for (const e of res.errors) ctx.io.err(`schedctl: ${e.id}: ${e.message}\n`);
  if (res.errors.length > 0) ctx.exit(1);
  const { output } = ctx.settings();
  if (output !== 'table' && output !== 'wide') {
    ctx.print(view(HoldTaskResponseSchema, res, () => ({ kind: 'rows', head: [], rows: [] })));
    return;
  }
  ctx.io.out(res.tasks.map((t) => `${t.id} ${hold ? 'held' : 'released'}\n`).join(''));
}

export async function tasksHold(ctx: Ctx, ids: string[]): Promise<void> {
  await holdOrRelease(ctx, ids, true);
}

export async function tasksRelease(ctx: Ctx, ids: string[]): Promise<void> {
  await holdOrRelease(ctx, ids, false);
}
