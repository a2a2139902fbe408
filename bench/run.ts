// npm run bench: every figure next to a baseline measured in the same run on the same machine
// (which others share: figures are noisy, ratios less so), printed as one table whose rows are
// the keys of bench/results/latest.json, with the targets and whether each is met.
//
//   npm run bench                       the whole bench (about 4 minutes)
//   npm run bench -- --profile          only the e2e run (etcd), the manager and worker 1 under
//                                       --cpu-prof; profiles and their top functions under
//                                       bench/results/profile/
//   npm run bench -- --profile --store embedded
//   npm run bench -- --only spawn,e2e   some phases only (spawn, cli, e2e, listings, idle, failover,
//                                       store, core); latest.json is left alone
//   BENCH_WORKER_CONFIG='cgroups: off' npm run bench -- --only spawn,e2e
//                                       the workers with more config lines (here: what cgroups cost)
//
// Order matters: the spawn baseline and the CLI's start-up come first, before anything else
// runs or this process grows a heap; the core benchmark, which grows it most, comes last.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT } from '../test/support/processes.js';
import { measureCliStart, measureListings, type CliListings, type CliStart } from './cli.js';
import type { CoreResult } from './core.js';
import { benchE2e, type E2eResult, type StoreKind } from './e2e.js';
import { measureFailover, type FailoverResult } from './failover.js';
import { measureIdle, type IdleResult } from './idle.js';
import { printSummary, summarize } from './profile.js';
import { round, startTsChild } from './procs.js';
import { report } from './report.js';
import { measureSpawnBaseline, type SpawnBaseline } from './spawn-baseline.js';
import { benchStore, type StoreResult } from './store.js';

const { values: args } = parseArgs({
  options: {
    profile: { type: 'boolean', default: false },
    store: { type: 'string', default: 'etcd' },
    tasks: { type: 'string' },
    only: { type: 'string' },
  },
});
const PHASES = ['spawn', 'cli', 'e2e', 'listings', 'idle', 'failover', 'store', 'core'] as const;
const only = args.only?.split(',');
for (const p of only ?? []) if (!(PHASES as readonly string[]).includes(p)) throw new Error(`--only: no phase "${p}" (phases: ${PHASES.join(', ')})`);
/** Whether a phase runs: all do unless --only names some. */
const runs = (p: (typeof PHASES)[number]): boolean => !only || only.includes(p);
const OUT = join(ROOT, 'bench/results');
/** Nothing here may hang the bench: past this, it gives up (the exit hook kills what it started). */
const HARD_LIMIT_MS = 9 * 60_000;

export interface BenchResults {
  spawn?: SpawnBaseline | undefined;
  cliStart?: CliStart | undefined;
  e2e: Partial<Record<StoreKind, E2eResult>>;
  listings?: CliListings | undefined;
  idle?: IdleResult | undefined;
  failover?: FailoverResult | undefined;
  store?: StoreResult | undefined;
  core?: CoreResult | undefined;
  errors: string[];
}

/** Runs one phase; a failure is recorded and the bench goes on. */
async function phase<T>(name: string, errors: string[], fn: () => Promise<T>): Promise<T | undefined> {
  const t0 = performance.now();
  process.stderr.write(`bench: ${name} …`);
  try {
    const r = await fn();
    process.stderr.write(` ${round((performance.now() - t0) / 1000, 1)} s\n`);
    return r;
  } catch (err) {
    process.stderr.write(` failed\n`);
    errors.push(`${name}: ${(err as Error).stack ?? String(err)}`);
    console.error(err);
    return undefined;
  }
}

/** Tasks in each e2e run: about 6 s worth at the bare spawn rate. */
const e2eTasks = (spawnPerS: number | undefined) => Number(args.tasks ?? 0) || Math.max(300, Math.min(4000, Math.round((spawnPerS ?? 200) * 6)));

async function whole(): Promise<number> {
  const t0 = performance.now();
  const r: BenchResults = { e2e: {}, errors: [] };
  r.spawn = runs('spawn') ? await phase('spawn baseline (fresh processes)', r.errors, () => measureSpawnBaseline()) : undefined;
  r.cliStart = runs('cli') ? await phase('schedctl start-up', r.errors, () => measureCliStart(10)) : undefined;
  const tasks = e2eTasks(r.spawn?.spawn_fresh_per_s);
  for (const store of runs('e2e') ? (['etcd', 'embedded'] as const) : []) {
    const e = await phase(`e2e, ${store} store, ${tasks} tasks`, r.errors, () =>
      benchE2e({ store, tasks, latencySamples: store === 'etcd' ? 200 : 100 }),
    );
    if (e) r.e2e[store] = e;
  }
  r.listings = runs('listings') ? await phase('schedctl workers ls / tasks ls', r.errors, () => measureListings(5000, 10_000)) : undefined;
  r.idle = runs('idle') ? await phase('idle workers', r.errors, () => measureIdle()) : undefined;
  r.failover = runs('failover') ? await phase('failover (3 etcd, 3 managers, 1 worker)', r.errors, () => measureFailover(3)) : undefined;
  r.store = runs('store') ? await phase('store', r.errors, () => benchStore()) : undefined;
  r.core = !runs('core') ? undefined : await phase('scheduler core (own process)', r.errors, async () => {
    const child = startTsChild('core.ts', ['--json']);
    try {
      return (await child.next('core', 180_000)) as unknown as CoreResult;
    } finally {
      await child.stop();
    }
  });
  for (const part of [r.listings, r.idle]) for (const e of part?.errors ?? []) r.errors.push(e);

  const { table, json } = report(r);
  const results = {
    ...json,
    errors: r.errors,
    machine: { cpus: cpus().length, cpu_model: cpus()[0]?.model ?? '', memory_bytes: totalmem(), node: process.version },
    date: new Date().toISOString(),
    duration_s: round((performance.now() - t0) / 1000),
  };
  console.log();
  table.print();
  if (!only) {
    mkdirSync(OUT, { recursive: true });
    writeFileSync(join(OUT, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
    console.log(`\nwritten to bench/results/latest.json in ${results.duration_s} s`);
  }
  if (r.errors.length > 0) console.log(`\n${r.errors.length} phase(s) failed:\n${r.errors.map((e) => `  ${e.split('\n')[0]}`).join('\n')}`);
  return r.errors.length > 0 ? 1 : 0;
}

async function profile(): Promise<number> {
  const store = args.store === 'embedded' ? 'embedded' : 'etcd';
  const dir = join(OUT, 'profile');
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(dir)) if (f.endsWith('.cpuprofile')) rmSync(join(dir, f));
  const tasks = Number(args.tasks ?? 0) || 1000;
  const e = await benchE2e({ store, tasks, latencySamples: 0, profileDir: dir });
  console.log(
    `e2e under --cpu-prof (${store}, ${tasks} tasks + ${Math.max(50, Math.round(tasks / 10))} warm-up): ${round(e.tasks_per_s)} tasks/s; ` +
      `CPU ms per task: ${Object.entries(e.cpu_ms_per_task)
        .map(([k, v]) => `${k} ${round(v, 2)}`)
        .join(', ')} (worker: itself ${round(e.worker_self_cpu_ms_per_task, 2)}, its tasks ${round(e.worker_tasks_cpu_ms_per_task, 2)})`,
  );
  const summaries: Record<string, unknown> = {};
  for (const [role, file] of Object.entries(e.profiles ?? {})) {
    const s = summarize(file, 15);
    summaries[role] = s;
    printSummary(role === 'worker' ? 'worker 1 (about half the tasks)' : role, s);
  }
  writeFileSync(join(dir, `summary-${store}.json`), `${JSON.stringify({ e2e: e, profiles: summaries }, null, 2)}\n`);
  console.log(`\nprofiles and summary-${store}.json in bench/results/profile/ (open a .cpuprofile in Chrome DevTools → Performance)`);
  return Object.keys(summaries).length === 2 ? 0 : 1;
}

setTimeout(() => {
  console.error(`bench: still running after ${HARD_LIMIT_MS / 60_000} minutes; giving up`);
  process.exit(1);
}, HARD_LIMIT_MS).unref();

(args.profile ? profile() : whole()).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
