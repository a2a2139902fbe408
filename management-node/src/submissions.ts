// Idempotency keys: the first RunTask with a key creates its task(s); a repeat,
// also one racing it, answers with the same tasks. The key is checked and
// reserved synchronously in the manager's one thread, before any await, so two
// requests cannot both create; and it is stored inside each task record
// (Task.idempotency_key, group_index, group_size), so it lives exactly as long
// as its tasks and is rebuilt from them after a restart.
import type { Task } from '../../proto/gen/schedapi/v1/types_pb.js';
import { InvalidArgumentError } from '../../common/errors.js';

const KEY = /^[A-Za-z0-9._:-]{1,128}$/;

export interface Submission {
  readonly key: string;
  readonly groupId: string;
  readonly size: number;
  /** Task ids by group index; a hole is a task whose write never landed (a crash mid-submission). */
  readonly ids: Array<string | undefined>;
  /** Settles when the submission that created the entry has been stored (or failed). */
  stored?: Promise<unknown> | undefined;
}

export function checkIdempotencyKey(key: string): void {
  if (!KEY.test(key)) throw new InvalidArgumentError('idempotency_key', 'must be 1-128 of [A-Za-z0-9._:-]');
}

export class Submissions {
  private readonly byKey = new Map<string, Submission>();

  get size(): number {
    return this.byKey.size;
  }

  get(key: string): Submission | undefined {
    return this.byKey.get(key);
  }

  /** reserve records a new submission under its key; the caller checked get() first, in the same turn. */
  reserve(key: string, groupId: string, size: number): Submission {
    const sub: Submission = { key, groupId, size, ids: new Array<string | undefined>(size).fill(undefined) };
    this.byKey.set(key, sub);
    return sub;
  }

  /** load puts a stored task back under its key after a restart. */
  load(task: Task): void {
    if (!task.idempotencyKey) return;
    let sub = this.byKey.get(task.idempotencyKey);
    const size = Math.max(1, task.groupSize);
    if (!sub) sub = this.reserve(task.idempotencyKey, task.groupId, size);
    if (task.groupIndex < sub.size) sub.ids[task.groupIndex] = task.id;
  }

  delete(key: string): void {
    this.byKey.delete(key);
  }
}
