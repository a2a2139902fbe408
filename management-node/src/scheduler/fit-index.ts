// FitIndex answers "which worker has at least m memory and c cpu" in
// O(log n): a treap ordered by (memory, ord) whose nodes also keep the largest
// cpu in their subtree, so a search skips whole subtrees without enough cpu.
// Ascending order gives best fit by memory (bin-pack), descending the most
// free memory first (spread). Used once for free resources (changes with every
// placement) and once for capacity (changes when a worker joins or resizes).

export interface FitNode<T> {
  readonly item: T;
  /** Tie-breaker among equal keys; unique per item in an index. */
  readonly ord: number;
  key: number;
  cpu: number;
  maxCpu: number;
  readonly prio: number;
  left: FitNode<T> | null;
  right: FitNode<T> | null;
}

type Node<T> = FitNode<T> | null;

function before<T>(a: FitNode<T>, b: FitNode<T>): boolean {
  return a.key < b.key || (a.key === b.key && a.ord < b.ord);
}

function pull<T>(n: FitNode<T>): void {
  let m = n.cpu;
  if (n.left !== null && n.left.maxCpu > m) m = n.left.maxCpu;
  if (n.right !== null && n.right.maxCpu > m) m = n.right.maxCpu;
  n.maxCpu = m;
}

function insert<T>(root: Node<T>, n: FitNode<T>): FitNode<T> {
  if (root === null) return n;
  if (before(n, root)) {
    const l = insert(root.left, n);
    root.left = l;
    if (l.prio > root.prio) {
      root.left = l.right;
      pull(root);
      l.right = root;
      pull(l);
      return l;
    }
  } else {
    const r = insert(root.right, n);
    root.right = r;
    if (r.prio > root.prio) {
      root.right = r.left;
      pull(root);
      r.left = root;
      pull(r);
      return r;
    }
  }
  pull(root);
  return root;
}

function merge<T>(a: Node<T>, b: Node<T>): Node<T> {
  if (a === null) return b;
  if (b === null) return a;
  if (a.prio > b.prio) {
    a.right = merge(a.right, b);
    pull(a);
    return a;
  }
  b.left = merge(a, b.left);
  pull(b);
  return b;
}

function remove<T>(root: Node<T>, n: FitNode<T>): Node<T> {
  if (root === null) return null;
  if (root === n) return merge(n.left, n.right);
  if (before(n, root)) root.left = remove(root.left, n);
  else root.right = remove(root.right, n);
  pull(root);
  return root;
}

/** Leftmost node of the subtree with cpu ≥ c. */
function firstAny<T>(n: Node<T>, c: number): Node<T> {
  while (n !== null && n.maxCpu >= c) {
    if (n.left !== null && n.left.maxCpu >= c) n = n.left;
    else if (n.cpu >= c) return n;
    else n = n.right;
  }
  return null;
}

/** Rightmost node of the subtree with cpu ≥ c. */
function lastAny<T>(n: Node<T>, c: number): Node<T> {
  while (n !== null && n.maxCpu >= c) {
    if (n.right !== null && n.right.maxCpu >= c) n = n.right;
    else if (n.cpu >= c) return n;
    else n = n.left;
  }
  return null;
}

/** Smallest node after (k, o) with cpu ≥ c. */
function firstAfter<T>(n: Node<T>, k: number, o: number, c: number): Node<T> {
  if (n === null || n.maxCpu < c) return null;
  if (n.key < k || (n.key === k && n.ord <= o)) return firstAfter(n.right, k, o, c);
  const l = firstAfter(n.left, k, o, c);
  if (l !== null) return l;
  if (n.cpu >= c) return n;
  return firstAny(n.right, c);
}

/** Largest node before (k, o) with cpu ≥ c. */
function lastBefore<T>(n: Node<T>, k: number, o: number, c: number): Node<T> {
  if (n === null || n.maxCpu < c) return null;
  if (n.key > k || (n.key === k && n.ord >= o)) return lastBefore(n.left, k, o, c);
  const r = lastBefore(n.right, k, o, c);
  if (r !== null) return r;
  if (n.cpu >= c) return n;
  return lastAny(n.left, c);
}

export class FitIndex<T> {
  private root: Node<T> = null;
  private count = 0;

  constructor(private readonly random: () => number) {}

  get size(): number {
    return this.count;
  }

  /** Creates a node for item; it is not in the index until insert(). */
  node(item: T, ord: number, key: number, cpu: number): FitNode<T> {
    return { item, ord, key, cpu, maxCpu: cpu, prio: this.random(), left: null, right: null };
  }

  insert(n: FitNode<T>): void {
    n.left = null;
    n.right = null;
    n.maxCpu = n.cpu;
    this.root = insert(this.root, n);
    this.count++;
  }

  remove(n: FitNode<T>): void {
    this.root = remove(this.root, n);
    n.left = null;
    n.right = null;
    this.count--;
  }

  /** Moves a node to new values: O(log n). */
  rekey(n: FitNode<T>, key: number, cpu: number): void {
    if (n.key === key && n.cpu === cpu) return;
    this.remove(n);
    n.key = key;
    n.cpu = cpu;
    this.insert(n);
  }

  /** The node with the smallest key ≥ minKey and cpu ≥ minCpu (ascending walk: pass the previous node as after). */
  ascending(minKey: number, minCpu: number, after?: FitNode<T>): FitNode<T> | null {
    return after === undefined ? firstAfter(this.root, minKey, -Infinity, minCpu) : firstAfter(this.root, after.key, after.ord, minCpu);
  }

  /** The node with the largest key and cpu ≥ minCpu, stopping below minKey (descending walk: pass the previous node as before). */
  descending(minKey: number, minCpu: number, before?: FitNode<T>): FitNode<T> | null {
    const n = before === undefined ? lastBefore(this.root, Infinity, 0, minCpu) : lastBefore(this.root, before.key, before.ord, minCpu);
    return n !== null && n.key >= minKey ? n : null;
  }

  /** In ascending order; for tests and pool eviction. */
  forEach(f: (n: FitNode<T>) => void): void {
    const walk = (n: Node<T>): void => {
      if (n === null) return;
      walk(n.left);
      f(n);
      walk(n.right);
    };
    walk(this.root);
  }
}

/** xorshift32: a seeded source for treap priorities, so runs are reproducible. */
export function seededRandom(seed: number): () => number {
  let x = seed | 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}
