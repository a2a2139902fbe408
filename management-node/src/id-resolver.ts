// References to tasks, groups and workers in requests (the contract is in
// management.proto): a full id, any unique prefix of it, or a task's short id (its
// last 8 characters, the random part of a UUIDv7: tasks of one burst share their
// first characters, not their last). A worker may also be named by its name.
// A full id costs one lookup; a task prefix a binary search (task-table.ts); the
// rest a scan, fine at the rate operators type ids.
import type { Task, Worker } from '../../proto/gen/schedapi/v1/types_pb.js';
import { WorkerState } from '../../proto/gen/schedapi/v1/types_pb.js';
import { AmbiguousIdError, InvalidArgumentError, NotFoundError } from '../../common/errors.js';
import type { TaskTable } from './task-table.js';
import { isValidId } from './worker-input.js';

/** The length of a task's short id. */
export const SHORT_ID = 8;
/** Matches of one reference collected before the search stops (the error says "N+ more"). */
const MAX_MATCHES = 1000;

/** checkRef throws InvalidArgumentError unless ref could be an id (bounded, no odd characters). */
export function checkRef(field: string, ref: string): string {
  if (!ref) throw new InvalidArgumentError(field, 'must not be empty');
  if (!isValidId(ref)) throw new InvalidArgumentError(field, 'must be 1-128 of [A-Za-z0-9._-], not starting with "."');
  return ref;
}

/** The one match of a reference, or the error saying why there is none. */
function one<T>(kind: string, ref: string, matches: T[], idOf: (m: T) => string, capped = false): T {
  if (matches.length === 1) return matches[0]!;
  if (matches.length === 0) throw new NotFoundError(kind, ref);
  throw new AmbiguousIdError(kind, ref, matches.map(idOf), capped);
}

export class IdResolver {
  constructor(
    private readonly tasks: TaskTable,
    private readonly workers: ReadonlyMap<string, Worker>,
  ) {}

  /** task: the task a reference names. */
  task(ref: string, field = 'id'): Task {
    return this.resolveTask(checkRef(field, ref));
  }

  /**
   * tasks resolves many references (CancelTask): the tasks named, in order and once each, and
   * for each reference that names none or several, why. Short ids are looked up in an index made
   * once for the request, not in a scan per reference.
   */
  tasksOf(refs: string[]): { tasks: Task[]; errors: Array<{ id: string; message: string }> } {
    let shorts: Map<string, string[]> | undefined;
    const byShort = (ref: string): string[] => {
      if (!shorts) {
        shorts = new Map();
        for (const id of this.tasks.keys()) {
          const s = id.slice(-SHORT_ID);
          const list = shorts.get(s);
          if (list) list.push(id);
          else shorts.set(s, [id]);
        }
      }
      return shorts.get(ref) ?? [];
    };
    const tasks: Task[] = [];
    const seen = new Set<Task>();
    const errors: Array<{ id: string; message: string }> = [];
    refs.forEach((ref, i) => {
      try {
        const t = this.resolveTask(checkRef(`ids[${i}]`, ref), refs.length > 1 ? byShort : undefined);
        if (!seen.has(t)) tasks.push(t);
        seen.add(t);
      } catch (err) {
        errors.push({ id: ref, message: (err as Error).message });
      }
    });
    return { tasks, errors };
  }

  /** worker: the worker a reference names: its id, its name (exact, preferred), or a unique id prefix. */
  worker(ref: string, field = 'id'): Worker {
    checkRef(field, ref);
    const exact = this.workers.get(ref);
    if (exact) return exact;
    let named: Worker[] = [];
    const prefixed: Worker[] = [];
    for (const w of this.workers.values()) {
      if (w.name === ref) named.push(w);
      else if (w.id.startsWith(ref)) prefixed.push(w);
    }
    // Names are unique among connected workers; one that left may have had it before.
    if (named.length > 1) {
      const live = named.filter((w) => w.state === WorkerState.CONNECTED);
      if (live.length === 1) named = live;
    }
    return one('worker', ref, named.length > 0 ? named : prefixed, (w) => (w.name && w.name !== w.id ? `${w.id} (${w.name})` : w.id));
  }

  /**
   * workerFilter: the worker id a ListTasks filter names. A worker forgotten since (removed, or
   * retained away) is still named by its full id while tasks carry it.
   */
  workerFilter(ref: string): string {
    try {
      return this.worker(ref, 'worker_id').id;
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      for (const t of this.tasks.values()) if (t.workerId === ref) return ref;
      throw err;
    }
  }

  /** group: the group id a reference names (full, a unique prefix, or its last 8 characters). */
  group(ref: string): string {
    checkRef('group_id', ref);
    const short = ref.length === SHORT_ID;
    const found = new Set<string>();
    for (const t of this.tasks.values()) {
      const g = t.groupId;
      if (!g || found.has(g)) continue;
      if (g === ref) return g;
      if (g.startsWith(ref) || (short && g.endsWith(ref))) found.add(g);
    }
    return one('group', ref, [...found], (g) => g);
  }

  private resolveTask(ref: string, byShort?: (ref: string) => string[]): Task {
    const exact = this.tasks.get(ref) ?? this.tasks.get(ref.toLowerCase());
    if (exact) return exact;
    const key = ref.toLowerCase();
    const ids = new Set(this.tasks.withPrefix(key, MAX_MATCHES));
    if (key.length === SHORT_ID) {
      if (byShort) for (const id of byShort(key)) ids.add(id);
      else for (const id of this.tasks.keys()) if (id.endsWith(key)) ids.add(id);
    }
    const list = [...ids];
    return this.tasks.get(one('task', ref, list, (id) => id, list.length >= MAX_MATCHES))!;
  }
}
