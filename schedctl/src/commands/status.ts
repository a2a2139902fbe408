import { StatusResponseSchema } from '../../../proto/gen/sched/v1/management_pb.js';
import { VERSION } from '../../../common/version.js';
import { TASK_STATE_NAMES } from '../format.js';
import { view } from '../printers/view.js';
import type { Ctx } from './context.js';

/**
 * Task counts in lifecycle order; every known state appears (0 if absent),
 * keys are accepted as "pending" or "TASK_STATE_PENDING", unknown keys follow.
 */
export function taskCounts(byState: Record<string, number>): Array<[string, number]> {
  const counts = new Map<string, number>(TASK_STATE_NAMES.map((s) => [s, 0]));
  for (const [key, n] of Object.entries(byState)) {
    const name = key.toLowerCase().replace(/^task_state_/, '');
    counts.set(name, (counts.get(name) ?? 0) + n);
  }
  return [...counts];
}

/** `schedctl status` (registered in registry.ts). */
export async function status(ctx: Ctx): Promise<void> {
  const res = await ctx.client().status({}, ctx.unary());
  ctx.print(
    view(StatusResponseSchema, res, () => ({
      kind: 'fields',
      fields: [
        ['Manager', ctx.settings().manager],
        ['Version', `${res.version || 'unknown'} (schedctl ${VERSION})`],
        ['Store', res.store],
        ['Workers', `${res.workersConnected} connected, ${res.workersTotal} known`],
        ...taskCounts(res.tasksByState).map(([state, n]): [string, string] => [`Tasks ${state}`, String(n)]),
      ],
    })),
  );
}
