import { StatusResponseSchema } from '../../../proto/gen/schedapi/v1/management_pb.js';
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
  let res = await ctx.client().status({}, ctx.unary());
  // A follower answers Status itself and keeps no counts: the leader it names has them
  // (and is then the manager these figures are from).
  let answered = ctx.settings().manager;
  if (res.role === 'follower' && res.leader) {
    const dialled = res;
    res = await ctx.clientOf(res.leader).status({}, ctx.unary()).catch(() => dialled);
    if (res !== dialled) answered = `${res.leader || dialled.leader} (asked ${answered}, a follower)`;
  }
  const ha: Array<[string, string]> =
    res.managers.length > 1 || res.role === 'follower'
      ? [
          ['Role', `${res.role}${res.term ? ` (term ${res.term})` : ''}`],
          ['Leader', res.leader || 'none elected'],
          ['Managers', res.managers.join(', ')],
        ]
      : [];
  ctx.print(
    view(StatusResponseSchema, res, () => ({
      kind: 'fields',
      fields: [
        ['Manager', answered],
        ...ha,
        ['Version', `${res.version || 'unknown'} (schedctl ${VERSION})`],
        ['Store', res.store],
        ['Workers', `${res.workersConnected} connected, ${res.workersTotal} known`],
        ...taskCounts(res.tasksByState).map(([state, n]): [string, string] => [`Tasks ${state}`, String(n)]),
      ],
    }), { names: () => [res.leader || ctx.settings().manager] }),
  );
}
