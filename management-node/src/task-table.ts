// The manager's tasks by id, in id order as well: a Map (what every part reads and
// writes) that also keeps its ids in a sorted array, so a listing starts a page
// anywhere with a binary search and walks either way, newest first included,
// without copying the ids, and an id prefix is found the same way. Ids are UUIDv7:
// id order is submission order, and a new id goes at the end of the array.
import type { Task } from '../../proto/gen/schedapi/v1/types_pb.js';

/** Deleted ids are dropped from the array once they are this many and at least half of it. */
const COMPACT_MIN = 1024;

export class TaskTable extends Map<string, Task> {
  /** Every id, sorted; also ids deleted since the last compaction (holes), which walks skip. */
  private ids: string[] = [];
  private holes = 0;

  override set(id: string, task: Task): this {
    if (!this.has(id)) this.insert(id);
    return super.set(id, task);
  }

  override delete(id: string): boolean {
    if (!super.delete(id)) return false;
    if (++this.holes >= COMPACT_MIN && this.holes * 2 >= this.ids.length) {
      this.ids = this.ids.filter((i) => this.has(i));
      this.holes = 0;
    }
    return true;
  }

  override clear(): void {
    super.clear();
    this.ids = [];
    this.holes = 0;
  }

  /** ascending yields the tasks in id order (oldest first), from the first id after `after`. */
  *ascending(after = ''): Generator<Task> {
    const ids = this.ids;
    for (let i = after ? this.bound(after, true) : 0; i < ids.length; i++) {
      const t = this.get(ids[i]!);
      if (t) yield t;
    }
  }

  /** descending yields the tasks newest first, from the last id before `before`. */
  *descending(before = ''): Generator<Task> {
    const ids = this.ids;
    for (let i = (before ? this.bound(before, false) : ids.length) - 1; i >= 0; i--) {
      const t = this.get(ids[i]!);
      if (t) yield t;
    }
  }

  /** withPrefix lists the ids that start with prefix, in order; at most max of them. */
  withPrefix(prefix: string, max: number): string[] {
    const out: string[] = [];
    const ids = this.ids;
    for (let i = this.bound(prefix, false); i < ids.length && out.length < max && ids[i]!.startsWith(prefix); i++) {
      if (this.has(ids[i]!)) out.push(ids[i]!);
    }
    return out;
  }

  private insert(id: string): void {
    const ids = this.ids;
    if (ids.length === 0 || id > ids[ids.length - 1]!) {
      ids.push(id);
      return;
    }
    // Older than the newest (loaded out of order, or another manager's clock): in its place.
    const i = this.bound(id, false);
    if (ids[i] === id) this.holes--; // a hole filled again
    else ids.splice(i, 0, id);
  }

  /** bound: the index of the first id above key (strictly when after, else at or above it). */
  private bound(key: string, after: boolean): number {
    const ids = this.ids;
    let lo = 0;
    let hi = ids.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const id = ids[mid]!;
      if (id < key || (after && id === key)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
