// Gates: what keeps a stored pending task from the placement queue before the
// scheduler ever sees it. A task is held (tasks hold), not due yet (tasks run --at
// / --in: spec.not_before_unix_ms, a long timer), waiting for its dependencies
// (dependencies.ts), or being changed by an operator (its change is on its way to
// the store). When the last gate opens, the task is admitted (dispatch.ts) as a new
// one would be; a dependency that can never be met ends it dead
// `dependency-failed`, and its own dependents after it, down the chain.
//
// Everything here is derived from the store: the index of dependents and the
// timers are rebuilt from the loaded records after a restart, and a dependency
// counts as ended only once the store holds its end (never from the working copy,
// which may be ahead of the store).
import { TaskState, type Task, type TaskSpec } from '../../proto/gen/schedapi/v1/types_pb.js';
import { InvalidArgumentError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import { setLongTimeout, type LongTimer } from '../../common/long-timer.js';
import { DependencyIndex, depsOf, judge, waitingFor, type Dep, type DepRecord } from './dependencies.js';
import type { Dispatch } from './dispatch.js';
import type { Journal } from './journal.js';
import { isTerminal } from './task-lifecycle.js';

/** What dispatch asks before it queues a pending task (admit, and the end of the recovery hold). */
export interface PlacementGate {
  /**
   * closed: a gate keeps the task from the queue now; the gate admits it again when it opens.
   * May end the task dead (dependency-failed).
   */
  closed(task: Task): boolean;
  /** reason: why a gate keeps the task (its pending reason), or undefined. Reads only. */
  reason(task: Task): string | undefined;
}

export const OPEN_GATE: PlacementGate = { closed: () => false, reason: () => undefined };

/** The furthest ahead a task may be put off (--at, --in): ten years. */
const MAX_DELAY_MS = 10 * 366 * 24 * 3600_000;

/** checkNotBefore refuses a not_before_unix_ms that is negative or more than ten years ahead. */
export function checkNotBefore(spec: TaskSpec, now: number): void {
  const at = spec.notBeforeUnixMs;
  if (at < 0n) throw new InvalidArgumentError('spec.not_before_unix_ms', 'must not be negative (0: at once)');
  if (at > BigInt(now + MAX_DELAY_MS)) throw new InvalidArgumentError('spec.not_before_unix_ms', 'is more than ten years ahead');
}

/** notBefore: the spec's --at time (0: none). */
export const notBefore = (task: Task): number => Number(task.spec?.notBeforeUnixMs ?? 0n);

/** The state of a task not ended yet, as a dependent's pending reason names it. */
function stateName(t: Task): string {
  if (t.state === TaskState.SCHEDULED) return t.startedUnixMs ? 'running' : 'scheduled';
  return TaskState[t.state].toLowerCase();
}

export class Gates implements PlacementGate {
  /** Dependency → the pending tasks a gate keeps that wait on it. */
  private readonly index = new DependencyIndex();
  /** Tasks whose end the store holds (terminal, no write in flight): only these satisfy or break a dependency. */
  private readonly ends = new Set<string>();
  /** Pending tasks a gate keeps from the queue: admitted when it opens. */
  private readonly gated = new Set<string>();
  /** Tasks not due yet, with the timer that admits them at their time. */
  private readonly timers = new Map<string, LongTimer>();
  /** Tasks with an operator's change on its way to the store, and how many such changes. */
  private readonly editing = new Map<string, number>();

  constructor(
    private readonly tasks: ReadonlyMap<string, Task>,
    private readonly journal: Journal,
    private readonly dispatch: Dispatch,
    /** Ends a task dead (attempts.ts kill); resolves once stored. */
    private readonly kill: (task: Task, reason: string) => Promise<void>,
    private readonly now: () => number,
    private readonly log: Logger,
  ) {}

  /** load notes a record read from the store after a restart: a terminal one is a stored end. */
  load(task: Task): void {
    if (isTerminal(task)) this.ends.add(task.id);
  }

  closed(task: Task): boolean {
    const deps = depsOf(task.spec);
    const verdict = deps.length > 0 ? judge(deps, (id) => this.record(id)) : undefined;
    if (verdict?.kind === 'broken') {
      // It can never run, held or not: it ends now, and its dependents after it (stored, below).
      this.drop(task.id, deps);
      this.log.info({ task: task.id, why: verdict.why }, 'dependency can never be met');
      task.error = verdict.why;
      void this.kill(task, 'dependency-failed').catch(() => undefined);
      return true;
    }
    let shut = task.held || this.editing.has(task.id);
    const wait = notBefore(task) - this.now();
    if (wait > 0) {
      shut = true;
      if (!this.timers.has(task.id)) this.timers.set(task.id, setLongTimeout(() => this.due(task.id), wait).unref());
    }
    if (verdict?.kind === 'wait') {
      shut = true;
      this.index.add(task.id, deps);
    }
    if (!shut) {
      this.drop(task.id, deps);
      return false;
    }
    this.gated.add(task.id);
    return true;
  }

  reason(task: Task): string | undefined {
    if (task.held) return 'held';
    if (this.editing.has(task.id)) return 'being updated';
    const at = notBefore(task);
    if (at > this.now()) return `starts at ${new Date(at).toISOString()}`;
    const deps = depsOf(task.spec);
    if (deps.length === 0) return undefined;
    const v = judge(deps, (id) => this.record(id));
    if (v.kind === 'wait') return waitingFor(v);
    return v.kind === 'broken' ? v.why : undefined;
  }

  /**
   * stored: a write of the task landed (journal.ts). Once the store holds its end (no write of
   * it in flight any more), its dependents are judged again.
   */
  stored(task: Task): void {
    if (!isTerminal(task) || this.ends.has(task.id)) return;
    this.drop(task.id, depsOf(task.spec));
    this.journal.committed(task.id).then(
      () => {
        if (this.tasks.get(task.id) !== task || !isTerminal(task) || this.ends.has(task.id)) return;
        this.ends.add(task.id);
        for (const id of this.index.dependentsOf(task.id)) this.reopen(id);
      },
      // Not stored yet: the journal retries it, and its landing comes back here.
      () => undefined,
    );
  }

  /** removed: retention deleted the task; dependents still waiting on it can never run. */
  removed(task: Task): void {
    this.ends.delete(task.id);
    this.drop(task.id, depsOf(task.spec));
    for (const id of this.index.dependentsOf(task.id)) this.reopen(id);
  }

  /**
   * edit applies an operator's change to a pending task (hold, release, update): the task leaves
   * the queue, the change is stored, and then it is judged again, so no worker is offered a
   * version of it the store does not hold. Resolves once stored.
   */
  async edit(task: Task, change: () => void): Promise<void> {
    this.editing.set(task.id, (this.editing.get(task.id) ?? 0) + 1);
    this.gated.add(task.id);
    this.dispatch.unqueue(task.id);
    change();
    try {
      await this.journal.writeTask(task);
    } finally {
      const left = (this.editing.get(task.id) ?? 1) - 1;
      if (left > 0) this.editing.set(task.id, left);
      else this.editing.delete(task.id);
      if (left <= 0) this.reopen(task.id);
    }
  }

  private record(id: string): DepRecord {
    const t = this.tasks.get(id);
    if (!t) return { missing: true };
    if (isTerminal(t) && this.ends.has(id)) return { missing: false, ended: true, task: t };
    return { missing: false, ended: false, state: stateName(t) };
  }

  /** due: a task's --at time came (its long timer fired). The wall clock is asked again on admission. */
  private due(id: string): void {
    this.timers.delete(id);
    this.reopen(id);
  }

  /** reopen admits a task a gate kept, if every gate is open now (dispatch.admit asks closed() again). */
  private reopen(id: string): void {
    const task = this.tasks.get(id);
    if (!task) {
      this.gated.delete(id);
      return;
    }
    if (!this.gated.has(id) || task.state !== TaskState.PENDING) return;
    this.dispatch.admit(task);
  }

  /** drop forgets a task in every gate: it is queued, or it ended. */
  private drop(id: string, deps: Dep[]): void {
    this.gated.delete(id);
    this.index.remove(id, deps);
    const timer = this.timers.get(id);
    if (timer) {
      timer.clear();
      this.timers.delete(id);
    }
  }
}
