// Scheduling core benchmark: placements per second of the pure core with a
// deep queue (100,000 tasks of mixed sizes and constraints) on 1k, 10k and
// 50k workers. The cluster is kept busy: whenever a pass places nothing more,
// running tasks finish (release) and new ones arrive (enqueue), so the figure
// is the steady-state cost of schedule + release + enqueue per placement.
// Baseline in the same run: a linear scan over all workers per placement.
//
//   npx tsx bench/core.ts [--json]
import { pathToFileURL } from 'node:url';
import { firstRejection, constraintList } from '../management-node/src/scheduler/feasibility.js';
import { scoreFit } from '../management-node/src/scheduler/rank.js';
import { createScheduler, type Resources, type TaskRequest, type WorkerInfo } from '../management-node/src/scheduler/scheduler.js';
import { seededRandom } from '../management-node/src/scheduler/fit-index.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

export interface CoreRow {
  workers: number;
  tasks: number;
  placements_per_s: number;
  us_per_placement: number;
}

export interface CoreResult {
  core_placements_per_s: number;
  rows: CoreRow[];
  baseline_linear_scan_per_s: number;
}

const SHAPES: Resources[] = [
  { millicpu: 4000, memoryBytes: 16 * GiB },
  { millicpu: 8000, memoryBytes: 32 * GiB },
  { millicpu: 16000, memoryBytes: 64 * GiB },
];
const CPUS = [250, 500, 1000, 2000, 4000];
const MEMS = [128 * MiB, 256 * MiB, 512 * MiB, 1 * GiB, 2 * GiB, 8 * GiB];

function makeWorker(i: number, random: () => number): WorkerInfo {
  const capacity = SHAPES[i % SHAPES.length] as Resources;
  const labels: Record<string, string> = { hostname: `host-${i}`, zone: ['a', 'b', 'c'][i % 3] as string, os: 'linux' };
  if (i % 20 === 0) labels.gpu = 'true';
  return {
    id: `w-${i}`,
    capacity: { ...capacity },
    labels,
    draining: false,
    load1: random() * (capacity.millicpu / 1000),
    memoryFreeBytes: Math.floor(capacity.memoryBytes * (0.3 + 0.7 * random())),
  };
}

function makeTask(seq: number, random: () => number): TaskRequest {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;
  const r = random();
  const constraints: Record<string, string> = r < 0.05 ? { gpu: 'true' } : r < 0.15 ? { zone: pick(['a', 'b', 'c']) } : {};
  return {
    id: `t-${seq}`,
    resources: { millicpu: pick(CPUS), memoryBytes: pick(MEMS) },
    constraints,
    priority: Math.floor(random() * 4),
    seq,
    strategy: random() < 0.25 ? 'spread' : 'binpack',
  };
}

/** Places `placements` tasks on `workers` workers with `queue` tasks queued; returns the rate. */
export function measureCore(workers: number, queue: number, placements: number, batch = 1024): CoreRow {
  const random = seededRandom(42);
  const s = createScheduler();
  for (let i = 0; i < workers; i++) s.upsertWorker(makeWorker(i, random));
  let seq = 0;
  for (; seq < queue; seq++) s.enqueue(makeTask(seq, random));
  const running: string[] = [];
  let placed = 0;
  const t0 = performance.now();
  while (placed < placements) {
    const ps = s.schedule(Math.min(batch, placements - placed));
    for (const p of ps) running.push(p.taskId);
    placed += ps.length;
    if (ps.length < batch && placed < placements) {
      // Full (or queue empty): some tasks finish, as many new ones arrive.
      const n = Math.min(batch, running.length);
      for (let i = 0; i < n; i++) {
        const k = Math.floor(random() * running.length);
        const id = running[k] as string;
        running[k] = running[running.length - 1] as string;
        running.pop();
        s.release(id);
        s.remove(id);
        s.enqueue(makeTask(seq++, random));
      }
      if (n === 0 && ps.length === 0) throw new Error('benchmark cluster cannot place anything');
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  return { workers, tasks: queue, placements_per_s: placed / seconds, us_per_placement: (seconds * 1e6) / placed };
}

/** The naive alternative: filter and score every worker for every task. */
export function measureLinearScan(workers: number, placements: number): number {
  const random = seededRandom(42);
  const fleet = Array.from({ length: workers }, (_, i) => {
    const w = makeWorker(i, random);
    return { id: w.id, connected: true, draining: false, labels: w.labels, capacity: w.capacity, used: { millicpu: 0, memoryBytes: 0 } };
  });
  const t0 = performance.now();
  for (let seq = 0; seq < placements; seq++) {
    const t = makeTask(seq, random);
    const needs = { resources: t.resources, constraints: constraintList(t.constraints) };
    let best: (typeof fleet)[number] | undefined;
    let bestScore = -Infinity;
    for (const w of fleet) {
      if (firstRejection(w, needs, false) !== undefined) continue;
      const score = scoreFit(t.strategy ?? 'binpack', w.capacity, w.used, t.resources);
      if (score > bestScore) {
        best = w;
        bestScore = score;
      }
    }
    if (best !== undefined) {
      best.used.millicpu += t.resources.millicpu;
      best.used.memoryBytes += t.resources.memoryBytes;
    }
  }
  return placements / ((performance.now() - t0) / 1000);
}

export async function benchCore(): Promise<CoreResult & { rows: CoreRow[] }> {
  measureCore(1000, 20_000, 20_000); // warm up the JIT
  const rows = [1000, 10_000, 50_000].map((workers) => measureCore(workers, 100_000, 200_000));
  const headline = rows.find((r) => r.workers === 10_000) as CoreRow;
  const baseline = measureLinearScan(10_000, 2000);
  return { core_placements_per_s: Math.round(headline.placements_per_s), rows, baseline_linear_scan_per_s: Math.round(baseline) };
}

function printTable(r: CoreResult): void {
  const line = (cols: Array<string | number>) => console.log(cols.map((c, i) => String(c).padStart(i === 0 ? 8 : 18)).join(''));
  line(['workers', 'queued tasks', 'placements/s', 'µs/placement']);
  for (const row of r.rows) line([row.workers, row.tasks, Math.round(row.placements_per_s), row.us_per_placement.toFixed(2)]);
  console.log(`core_placements_per_s (10k workers): ${r.core_placements_per_s}  (target ≥ 50000)`);
  console.log(`baseline, linear scan over 10k workers: ${r.baseline_linear_scan_per_s} placements/s`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  // --json: one line {"event":"core", ...CoreResult}, for bench/run.ts, which runs it in a process of its own.
  const print = process.argv.includes('--json') ? (r: CoreResult) => console.log(JSON.stringify({ event: 'core', ...r })) : printTable;
  benchCore().then(print, (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
