// The figures as JSON keys (bench/results/latest.json) and as table rows with their targets.
import type { E2eResult } from './e2e.js';
import { round } from './procs.js';
import type { BenchResults } from './run.js';
import { fmt, Table } from './table.js';

type Json = Record<string, unknown>;

/** Rounded to a few significant digits, for the JSON. */
function sig(v: number | undefined): number | undefined {
  if (v === undefined || !Number.isFinite(v)) return undefined;
  const a = Math.abs(v);
  return round(v, a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3);
}

/** sig() on every number inside. */
function sigDeep(v: unknown): unknown {
  if (typeof v === 'number') return sig(v);
  if (Array.isArray(v)) return v.map(sigDeep);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, sigDeep(x)]));
  return v;
}

function e2eJson(e: E2eResult | undefined, spawnPerS: number | undefined, suffix: string): Json {
  if (!e) return {};
  const cpu = Object.fromEntries(Object.entries(e.cpu_ms_per_task).map(([k, v]) => [k, sig(v)]));
  const s = suffix ? `_${suffix}` : '';
  return {
    [`e2e${s}_tasks_per_s`]: sig(e.tasks_per_s),
    [`e2e${s}_vs_spawn_ratio`]: spawnPerS ? round(e.tasks_per_s / spawnPerS, 3) : undefined,
    [`cpu_ms_per_task${s}`]: cpu,
    [`submit_done${s}_p50_ms`]: sig(e.p50_ms),
    [`submit_done${s}_p99_ms`]: sig(e.p99_ms),
  };
}

function e2eRows(t: Table, e: E2eResult | undefined, r: BenchResults, suffix: string): void {
  const s = suffix ? `_${suffix}` : '';
  const spawn = r.spawn?.spawn_fresh_per_s;
  const spawnCpu = r.spawn?.spawn_cpu_ms;
  const c = e?.cpu_ms_per_task;
  const store = e?.store ?? (suffix || 'etcd');
  t.add({ key: `e2e${s}_tasks_per_s`, value: e?.tasks_per_s, unit: 'tasks/s', note: e ? `${e.tasks} tasks, 64 RunTask in flight, ${fmt(e.seconds)} s (submitted in ${fmt(e.submitted_seconds)} s)${e.dead ? `, ${e.dead} DEAD` : ''}` : 'failed' });
  t.add({
    key: `e2e${s}_vs_spawn_ratio`,
    value: e && spawn ? e.tasks_per_s / spawn : undefined,
    unit: '×',
    target: { op: '>=', limit: 0.8, text: `≥ 0.8 (${fmt(spawn ? 0.8 * spawn : undefined)} tasks/s)` },
    note: 'vs spawn_fresh_per_s',
  });
  const k = `cpu_ms_per_task${s}`;
  t.add({ key: `${k}.manager`, value: c?.manager, unit: 'ms' });
  t.add({
    key: `${k}.worker`,
    value: c?.worker,
    unit: 'ms',
    target: spawnCpu ? { op: '<=', limit: 1.5 * spawnCpu, text: `≤ 1.5 × spawn_cpu_ms = ${fmt(1.5 * spawnCpu)}` } : undefined,
    note: e ? `both workers, their watchdogs and the tasks they ran (itself ${fmt(e.worker_self_cpu_ms_per_task)}, tasks ${fmt(e.worker_tasks_cpu_ms_per_task)})` : '',
  });
  t.add({ key: `${k}.client`, value: c?.client, unit: 'ms', note: 'the submitting client process' });
  if (store === 'etcd') t.add({ key: `${k}.etcd`, value: c?.etcd, unit: 'ms' });
  t.add({
    key: `${k}.total`,
    value: c?.total,
    unit: 'ms',
    target: { op: '<=', limit: 2.5, text: '≤ 2.5' },
    note: e ? `machine-wide busy time per task ${fmt(e.machine_cpu_ms_per_task)} (others included)` : '',
  });
  const floor = store === 'etcd' && r.store && r.spawn ? 2 * r.store.etcd_put_p50_ms + r.spawn.spawn_ms : undefined;
  const extra = store === 'etcd' ? '' : " (etcd's target)";
  t.add({
    key: `submit_done${s}_p50_ms`,
    value: e?.p50_ms,
    unit: 'ms',
    target: { op: '<=', limit: 4, text: `≤ 4${extra}` },
    note: `one task alone, RunTask → WatchTasks says done${floor ? `; floor 2 etcd puts + 1 spawn = ${fmt(floor)} ms` : ''}`,
  });
  t.add({ key: `submit_done${s}_p99_ms`, value: e?.p99_ms, unit: 'ms', target: { op: '<=', limit: 10, text: `≤ 10${extra}` } });
}

export function report(r: BenchResults): { table: Table; json: Json } {
  const t = new Table();
  const sp = r.spawn;
  const json: Json = {};

  t.section('baselines: bare spawn of /bin/true from a fresh node process (bench/spawn-child.mjs)');
  t.add({ key: 'spawn_fresh_per_s', value: sp?.spawn_fresh_per_s, unit: 'spawns/s', baseline: true, note: '16 in flight' });
  t.add({ key: 'spawn_fresh_1_per_s', value: sp?.spawn_fresh_1_per_s, unit: 'spawns/s', note: '1 in flight' });
  t.add({ key: 'spawn_fresh_x2_per_s', value: sp?.spawn_fresh_x2_per_s, unit: 'spawns/s', note: 'two processes at once, 16 in flight each, together' });
  t.add({ key: 'spawn_cpu_ms', value: sp?.spawn_cpu_ms, unit: 'ms', baseline: true, note: sp ? `CPU of one spawn, parent + child, 1 in flight (parent ${fmt(sp.spawn_cpu_parent_ms)}; 16 in flight ${fmt(sp.spawn_cpu_16_ms)})` : '' });
  t.add({ key: 'spawn_machine_cpu_ms', value: sp?.spawn_machine_cpu_ms, unit: 'ms', note: 'machine-wide busy time per spawn, whatever else ran included' });
  if (sp) Object.assign(json, Object.fromEntries(Object.entries(sp).map(([k, v]) => [k, sig(v)])));

  t.section('e2e: built binaries, 1 manager + 2 workers, client in its own process, /bin/true — etcd store');
  e2eRows(t, r.e2e.etcd, r, '');
  t.section('e2e — embedded store (lmdb)');
  e2eRows(t, r.e2e.embedded, r, 'embedded');
  Object.assign(json, e2eJson(r.e2e.etcd, sp?.spawn_fresh_per_s, ''), e2eJson(r.e2e.embedded, sp?.spawn_fresh_per_s, 'embedded'));
  json['e2e'] = sigDeep(r.e2e);

  t.section('schedctl (the built binary)');
  const cs = r.cliStart;
  t.add({ key: 'cli_start_ms', value: cs?.cli_start_ms, unit: 'ms', target: { op: '<=', limit: 60, text: '≤ 60' }, note: cs ? `median of 10: schedctl --version ${fmt(cs.schedctl_version_ms)} − node -e 0 ${fmt(cs.node_start_ms)}` : '' });
  const l = r.listings;
  const start = l?.cli_process_start_ms;
  t.add({ key: 'workers_ls_5000_ms', value: l?.workers_ls_5000_ms, unit: 'ms', target: { op: '<', limit: 500, text: '< 500' }, note: l?.workers_ls_5000_wall_ms !== undefined ? `5,000 fake workers; wall ${fmt(l.workers_ls_5000_wall_ms)} − process start ${fmt(start)}` : '' });
  t.add({ key: 'tasks_ls_10000_ms', value: l?.tasks_ls_10000_ms, unit: 'ms', target: { op: '<', limit: 500, text: '< 500' }, note: l?.tasks_ls_10000_wall_ms !== undefined ? `--limit 0, 10,000 finished tasks; wall ${fmt(l.tasks_ls_10000_wall_ms)} − process start ${fmt(start)}` : '' });
  if (cs) Object.assign(json, { cli_start_ms: sig(cs.cli_start_ms), schedctl_version_ms: sig(cs.schedctl_version_ms), node_start_ms: sig(cs.node_start_ms) });
  if (l) {
    const { errors: _errors, ...rest } = l;
    Object.assign(json, Object.fromEntries(Object.entries(rest).map(([k, v]) => [k, sig(v)])));
  }

  t.section('idle fake workers on one manager (ping_interval 1s, 10 s window; fleet in its own process)');
  const i = r.idle;
  t.add({ key: 'idle_1000_workers_cpu_pct', value: i?.idle_1000_workers_cpu_pct, unit: '% core', note: i ? `${fmt(i.idle_1000_workers_kib_per_worker)} KiB per worker` : '' });
  t.add({ key: 'idle_10000_workers_cpu_pct', value: i?.idle_10000_workers_cpu_pct, unit: '% core', target: { op: '<', limit: 30, text: '< 30' } });
  t.add({ key: 'idle_10000_workers_kib_per_worker', value: i?.idle_10000_workers_kib_per_worker, unit: 'KiB', target: { op: '<', limit: 100, text: '< 100' }, note: i ? `manager RSS ${fmt((i.idle_manager_base_rss_kib ?? 0) / 1024)} → ${fmt((i.idle_10000_workers_rss_kib ?? 0) / 1024)} MiB` : '' });
  if (i) {
    const { errors: _errors, ...rest } = i;
    Object.assign(json, Object.fromEntries(Object.entries(rest).map(([k, v]) => [k, sig(v)])));
  }

  t.section('high availability: 3 etcd members, 3 managers, 1 worker, default settings (leader_lease 3s, ping 1s × 3)');
  const f = r.failover;
  t.add({ key: 'failover_s', value: f?.failover_s, unit: 's', target: { op: '<', limit: 5, text: '< 5' }, note: f ? `kill -9 of the leader → next task acknowledged and placed; median of ${f.failover_runs.length} (${f.failover_runs.map((x) => fmt(x)).join(', ')}), worst ${fmt(f.failover_worst_s)}` : '' });
  t.add({ key: 'worker_loss_detect_s', value: f?.worker_loss_detect_s, unit: 's', target: { op: '<', limit: 5, text: '< 5' }, note: 'a frozen worker (SIGSTOP) → shown disconnected' });
  if (f) Object.assign(json, { failover_s: sig(f.failover_s), failover_worst_s: sig(f.failover_worst_s), failover_runs_s: f.failover_runs.map(sig), worker_loss_detect_s: sig(f.worker_loss_detect_s) });

  t.section('store, in this process');
  const st = r.store;
  t.add({ key: 'etcd_raw_writes_per_s', value: st?.etcd_raw_writes_per_s, unit: 'writes/s', baseline: true, note: '128-put txns, 8 in flight' });
  t.add({ key: 'store_write_ratio', value: st ? st.store_writes_per_s / st.etcd_raw_writes_per_s : undefined, unit: '×', target: { op: '>=', limit: 0.5, text: '≥ 0.5' }, note: st ? `group commit on etcd, ${fmt(st.store_writes_per_s)} writes/s` : '' });
  t.add({ key: 'embedded_store_writes_per_s', value: st?.embedded_store_writes_per_s, unit: 'writes/s', note: 'group commit on lmdb' });
  t.add({ key: 'etcd_put_p50_ms', value: st?.etcd_put_p50_ms, unit: 'ms', note: 'one awaited put' });
  if (st) Object.assign(json, { ...Object.fromEntries(Object.entries(st).map(([k, v]) => [k, sig(v)])), store_write_ratio: round(st.store_writes_per_s / st.etcd_raw_writes_per_s, 3) });

  t.section('scheduler core (bench/core.ts), 100,000 queued tasks');
  const c = r.core;
  t.add({ key: 'core_linear_scan_per_s', value: c?.baseline_linear_scan_per_s, unit: 'placements/s', baseline: true, note: 'linear scan over 10k workers' });
  t.add({ key: 'core_placements_per_s', value: c?.core_placements_per_s, unit: 'placements/s', target: { op: '>=', limit: 50_000, text: '≥ 50,000' }, note: c ? `10k workers, ${fmt(c.core_placements_per_s / c.baseline_linear_scan_per_s)}× the scan` : '' });
  for (const row of c?.rows ?? []) if (row.workers !== 10_000) t.add({ key: `core_by_workers.${row.workers}`, value: row.placements_per_s, unit: 'placements/s' });
  if (c) {
    Object.assign(json, {
      core_placements_per_s: c.core_placements_per_s,
      core_linear_scan_per_s: c.baseline_linear_scan_per_s,
      core_vs_linear_scan_ratio: round(c.core_placements_per_s / c.baseline_linear_scan_per_s, 1),
      core_by_workers: Object.fromEntries(c.rows.map((x) => [x.workers, round(x.placements_per_s)])),
    });
  }
  json['targets_met'] = t.verdicts();
  return { table: t, json };
}
