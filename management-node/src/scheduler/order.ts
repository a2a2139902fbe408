// Order step: which queued task goes first. Higher priority first, then
// earlier submission (seq); the id settles what the caller left tied.

export interface QueueOrder {
  readonly id: string;
  readonly priority: number;
  readonly seq: number;
}

/** precedes: a is placed before b. */
export function precedes(a: QueueOrder, b: QueueOrder): boolean {
  if (a.priority !== b.priority) return a.priority > b.priority;
  if (a.seq !== b.seq) return a.seq < b.seq;
  return a.id < b.id;
}

export interface HeapItem {
  /** Position in the heap that holds the item, -1 when in none. */
  heapIndex: number;
}

/** A binary min-heap that knows where each item is, so remove and re-key are O(log n). */
export class IndexedHeap<T extends HeapItem> {
  private readonly items: T[] = [];

  constructor(private readonly less: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    item.heapIndex = this.items.length;
    this.items.push(item);
    this.up(item.heapIndex);
  }

  pop(): T | undefined {
    const top = this.items[0];
    if (top !== undefined) this.remove(top);
    return top;
  }

  remove(item: T): void {
    const i = item.heapIndex;
    if (i < 0 || this.items[i] !== item) return;
    const last = this.items.pop() as T;
    item.heapIndex = -1;
    if (last === item) return;
    this.items[i] = last;
    last.heapIndex = i;
    this.update(last);
  }

  /** Restores order after the item's key changed either way. */
  update(item: T): void {
    const i = item.heapIndex;
    if (i < 0) return;
    if (!this.up(i)) this.down(i);
  }

  private up(i: number): boolean {
    const items = this.items;
    const item = items[i] as T;
    const start = i;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = items[p] as T;
      if (!this.less(item, parent)) break;
      items[i] = parent;
      parent.heapIndex = i;
      i = p;
    }
    items[i] = item;
    item.heapIndex = i;
    return i !== start;
  }

  private down(i: number): void {
    const items = this.items;
    const n = items.length;
    const item = items[i] as T;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      let c = l;
      if (r < n && this.less(items[r] as T, items[l] as T)) c = r;
      const child = items[c] as T;
      if (!this.less(child, item)) break;
      items[i] = child;
      child.heapIndex = i;
      i = c;
    }
    items[i] = item;
    item.heapIndex = i;
  }
}
