import type { Ctx } from './context.js';
import { eachWorker, printWorkers } from './workers-each.js';

/**
 * `schedctl workers rm ID...` (registered in register-workers.ts): forgets
 * workers that left for good. The management node refuses a connected one
 * (its reason is printed); the ones removed are listed as they were.
 */
export async function workersRm(ctx: Ctx, ids: string[]): Promise<void> {
  const client = ctx.client();
  const removed = await eachWorker(ctx, 'remove', ids, async (id) => (await client.removeWorker({ id }, ctx.unary())).worker);
  printWorkers(ctx, removed);
}
