// Dependencies between tasks (Slurm's afterok / afterany / afternotok), in TaskSpec's
// after_ok, after_any and after_failed: the rules, pure. A dependency is judged on
// the record the store holds (the caller says which ends are stored): a task may
// wait on one, go ahead, or never run because one ended the wrong way or is gone.
// References are resolved once, at submission, to full task ids (a group id to its
// members), so the spec names exactly what it waits for and no cycle can be built.
import type { Task, TaskSpec } from '../../proto/gen/schedapi/v1/types_pb.js';
import { TaskOutcome, TaskState } from '../../proto/gen/schedapi/v1/types_pb.js';
import { InvalidArgumentError, NotFoundError } from '../../common/errors.js';
import { outcomeOf } from '../../common/outcome.js';
import { SHORT_ID, type IdResolver } from './id-resolver.js';

/** Dependencies one task may name, after groups are expanded to their members. */
export const MAX_DEPENDENCIES = 1000;

export type DepKind = 'ok' | 'any' | 'failed';

export interface Dep {
  id: string;
  kind: DepKind;
}

/** depsOf lists a spec's dependencies, each with how it must end. */
export function depsOf(spec: TaskSpec | undefined): Dep[] {
  if (!spec) return [];
  return [
    ...spec.afterOk.map((id) => ({ id, kind: 'ok' as const })),
    ...spec.afterAny.map((id) => ({ id, kind: 'any' as const })),
    ...spec.afterFailed.map((id) => ({ id, kind: 'failed' as const })),
  ];
}

/**
 * What the store holds of a dependency: missing (unknown, or removed by retention), not ended
 * yet (its state, as its name), or ended (the stored record: terminal and no write in flight).
 */
export type DepRecord = { missing: true } | { missing: false; ended: false; state: string } | { missing: false; ended: true; task: Task };

export type Verdict =
  | { kind: 'met' }
  | { kind: 'wait'; dep: string; state: string }
  | { kind: 'broken'; dep: string; why: string };

const short = (id: string): string => id.slice(-SHORT_ID);

/** satisfies: how an ended dependency ended meets what the dependent asked of it. */
export function satisfies(kind: DepKind, task: Task): boolean {
  const succeeded = outcomeOf(task) === TaskOutcome.SUCCEEDED;
  return kind === 'any' || (kind === 'ok' ? succeeded : !succeeded);
}

/** endedAs names how a task ended, for the dependent's error: "done (exit 3)", "dead (cancelled)". */
export function endedAs(task: Task): string {
  if (task.state === TaskState.DEAD) return `dead (${task.deadReason})`;
  if (task.signal) return `done (${task.signal})`;
  return `done (exit ${task.exitCode})`;
}

/**
 * judge: one broken dependency breaks the task; otherwise it waits for the first one that has
 * not ended; otherwise every one is met.
 */
export function judge(deps: Dep[], record: (id: string) => DepRecord): Verdict {
  let wait: Verdict | undefined;
  for (const d of deps) {
    const r = record(d.id);
    if (r.missing) return { kind: 'broken', dep: d.id, why: `dependency ${short(d.id)} no longer exists` };
    if (!r.ended) {
      wait ??= { kind: 'wait', dep: d.id, state: r.state };
      continue;
    }
    if (!satisfies(d.kind, r.task)) {
      const wanted = d.kind === 'ok' ? 'succeed' : 'fail';
      return { kind: 'broken', dep: d.id, why: `dependency ${short(d.id)} ended ${endedAs(r.task)}; it had to ${wanted}` };
    }
  }
  return wait ?? { kind: 'met' };
}

/** waitingFor is the pending reason of a task that waits on a dependency. */
export const waitingFor = (v: { dep: string; state: string }): string => `waiting for ${short(v.dep)}: ${v.state}`;

/**
 * resolveDependencies replaces the references in a spec's after_* lists by full task ids: a
 * task reference (id, prefix, short id) or a group id (every member). Refuses an unknown one,
 * naming it, and more than MAX_DEPENDENCIES in all. Changes spec.
 */
export function resolveDependencies(spec: TaskSpec, ids: IdResolver, tasks: Iterable<Task>): void {
  const lists = [
    ['after_ok', spec.afterOk],
    ['after_any', spec.afterAny],
    ['after_failed', spec.afterFailed],
  ] as const;
  const named = lists.reduce((n, [, refs]) => n + refs.length, 0);
  if (named === 0) return;
  if (named > MAX_DEPENDENCIES) throw new InvalidArgumentError('spec.after_*', `names ${named} dependencies; at most ${MAX_DEPENDENCIES}`);
  let members: Map<string, string[]> | undefined;
  const groupMembers = (group: string): string[] => {
    if (!members) {
      members = new Map();
      for (const t of tasks) if (t.groupId) (members.get(t.groupId) ?? members.set(t.groupId, []).get(t.groupId)!).push(t.id);
    }
    return members.get(group) ?? [];
  };
  let total = 0;
  for (const [field, refs] of lists) {
    const resolved = new Set<string>();
    refs.forEach((ref, i) => {
      const where = `spec.${field}[${i}]`;
      for (const id of resolveOne(ref, where, ids, groupMembers)) resolved.add(id);
    });
    total += resolved.size;
    if (total > MAX_DEPENDENCIES) throw new InvalidArgumentError(`spec.${field}`, `names more than ${MAX_DEPENDENCIES} tasks in all (groups count each member)`);
    refs.splice(0, refs.length, ...resolved);
  }
}

/** A task reference, else a group's; an unknown one is refused naming it. */
function resolveOne(ref: string, where: string, ids: IdResolver, groupMembers: (g: string) => string[]): string[] {
  try {
    return [ids.task(ref, where).id];
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
  }
  let group: string;
  try {
    group = ids.group(ref);
  } catch (err) {
    if (err instanceof NotFoundError) throw new InvalidArgumentError(where, `no task or group ${JSON.stringify(ref)}`);
    throw err;
  }
  return groupMembers(group);
}

/**
 * The pending tasks that wait on each dependency: when one ends, its dependents are judged
 * again at once. Derived: rebuilt from the store's records on start.
 */
export class DependencyIndex {
  private readonly byDep = new Map<string, Set<string>>();

  add(taskId: string, deps: Dep[]): void {
    for (const d of deps) {
      let set = this.byDep.get(d.id);
      if (!set) this.byDep.set(d.id, (set = new Set()));
      set.add(taskId);
    }
  }

  remove(taskId: string, deps: Dep[]): void {
    for (const d of deps) {
      const set = this.byDep.get(d.id);
      if (set?.delete(taskId) && set.size === 0) this.byDep.delete(d.id);
    }
  }

  /** The pending tasks waiting on depId. */
  dependentsOf(depId: string): string[] {
    return [...(this.byDep.get(depId) ?? [])];
  }
}
