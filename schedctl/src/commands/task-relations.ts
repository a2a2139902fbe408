// What `tasks show` says of a task's gates: held, its --at time, the tasks it waits
// for (with their states, asked of the manager) and the tasks that wait for it.
// Dependents are found among the tasks submitted after it (a dependency exists
// before its dependents: the manager resolves them at submission), a bounded scan.
import { TaskState, type Task } from '../../../proto/gen/schedapi/v1/types_pb.js';
import { outcomeName, taskStateName, timeFromNow } from '../format.js';
import type { Ctx } from './context.js';

/** Dependencies whose state is asked for (one GetTask each); the rest are listed by id. */
const MAX_ASKED = 20;
/** Tasks submitted after this one that are searched for dependents: pages of 1000. */
const DEPENDENT_PAGES = 10;
const PAGE = 1000;
/** Dependents listed. */
const MAX_SHOWN = 20;

const short = (id: string): string => id.slice(-8);

/** Each dependency with what it must do: after-ok, after-any, after-failed. */
export function dependencies(t: Task): Array<{ id: string; kind: string }> {
  const s = t.spec;
  if (!s) return [];
  return [
    ...s.afterOk.map((id) => ({ id, kind: 'after-ok' })),
    ...s.afterAny.map((id) => ({ id, kind: 'after-any' })),
    ...s.afterFailed.map((id) => ({ id, kind: 'after-failed' })),
  ];
}

const more = (n: number): string => (n > 0 ? `, and ${n} more` : '');

/** The gate fields known from the task alone (tasks run -o table prints them too). */
export function gateFields(t: Task, now: number): Array<[string, string]> {
  const deps = dependencies(t);
  return [
    ['Held', t.held ? 'yes' : ''],
    ['Not before', t.spec?.notBeforeUnixMs ? timeFromNow(t.spec.notBeforeUnixMs, now) : ''],
    ['Dependencies', deps.slice(0, MAX_SHOWN).map((d) => `${short(d.id)} (${d.kind})`).join(', ') + more(deps.length - MAX_SHOWN)],
  ];
}

function stateOf(t: Task): string {
  if (t.state === TaskState.DONE || t.state === TaskState.DEAD) return `${taskStateName(t.state)}, ${outcomeName(t)}`;
  return taskStateName(t.state);
}

/**
 * relations: the Dependencies field with each dependency's state, and the Dependents field.
 * A failing call leaves that field as it was (the task itself was shown).
 */
export async function relations(ctx: Ctx, t: Task): Promise<Array<[string, string]>> {
  const deps = dependencies(t);
  const asked = await Promise.all(
    deps.slice(0, MAX_ASKED).map(async (d) => {
      const state = await ctx
        .client()
        .getTask({ id: d.id }, ctx.unary())
        .then((r) => (r.task ? stateOf(r.task) : 'unknown'), () => 'not found');
      return `${short(d.id)} (${d.kind}: ${state})`;
    }),
  );
  const listed = [...asked, ...deps.slice(MAX_ASKED).map((d) => `${short(d.id)} (${d.kind})`)];
  const out: Array<[string, string]> = [['Dependencies', listed.join(', ')]];
  const found: string[] = [];
  let pageToken = `>${t.id}`;
  let pages = 0;
  for (; pages < DEPENDENT_PAGES && pageToken; pages++) {
    const page = await ctx.client().listTasks({ limit: PAGE, pageToken, oldestFirst: true }, ctx.unary());
    for (const d of page.tasks) if (dependencies(d).some((x) => x.id === t.id)) found.push(`${short(d.id)} (${stateOf(d)})`);
    pageToken = page.nextPageToken;
  }
  const cut = pageToken ? ` (searched the ${(DEPENDENT_PAGES * PAGE).toLocaleString('en-US')} tasks submitted after it)` : '';
  out.push(['Dependents', found.slice(0, MAX_SHOWN).join(', ') + more(found.length - MAX_SHOWN) + (found.length > 0 || cut ? cut : '')]);
  return out;
}
