// What idle workers cost the manager: its CPU (% of one core) and RSS with 1,000 and then
// 10,000 fake workers connected and doing nothing but answer pings (ping_interval 1s). The
// fleet runs in processes of its own (bench/fleet.ts), so only the manager is counted.
import { procStat, rssKiB } from './proc-cpu.js';
import { removeDir, sleep, startFleet, startManager, tempDir, waitConnected, type LineChild, type Manager } from './procs.js';

export interface IdleResult {
  idle_1000_workers_cpu_pct?: number;
  idle_10000_workers_cpu_pct?: number;
  idle_1000_workers_kib_per_worker?: number;
  idle_10000_workers_kib_per_worker?: number;
  idle_manager_base_rss_kib?: number;
  idle_10000_workers_rss_kib?: number;
  errors: string[];
}

/** The manager's CPU over windowMs as % of one core. */
async function cpuPct(pid: number, windowMs: number): Promise<number> {
  const a = procStat(pid);
  const t0 = performance.now();
  await sleep(windowMs);
  const b = procStat(pid);
  if (!a || !b) throw new Error('the manager exited');
  return ((b.selfMs - a.selfMs) / (performance.now() - t0)) * 100;
}

export async function measureIdle(windowMs = 10_000, settleMs = 3000): Promise<IdleResult> {
  const dir = tempDir('sched-bench-idle-');
  const out: IdleResult = { errors: [] };
  let manager: Manager | undefined;
  const fleets: LineChild[] = [];
  try {
    manager = await startManager(dir, 'manager', `store: {type: embedded, path: ${dir}/db}\nping_interval: 1s`);
    const pid = manager.daemon.pid;
    await sleep(1000);
    const base = rssKiB(pid);
    out.idle_manager_base_rss_kib = base;
    // 1,000 first, then 9,000 more in a second fleet process: 10,000 on the same manager.
    for (const [total, add] of [
      [1000, 1000],
      [10_000, 9000],
    ] as const) {
      try {
        fleets.push(await startFleet(manager.address, add, `idle${total}`, 150_000));
        await waitConnected(manager.client, total, 60_000);
        await sleep(settleMs);
        const pct = await cpuPct(pid, windowMs);
        const perWorker = (rssKiB(pid) - base) / total;
        if (total === 1000) {
          out.idle_1000_workers_cpu_pct = pct;
          out.idle_1000_workers_kib_per_worker = perWorker;
        } else {
          out.idle_10000_workers_cpu_pct = pct;
          out.idle_10000_workers_kib_per_worker = perWorker;
          out.idle_10000_workers_rss_kib = rssKiB(pid);
        }
      } catch (err) {
        out.errors.push(`idle ${total}: ${(err as Error).message}`);
        break;
      }
    }
    return out;
  } finally {
    await Promise.all(fleets.map((f) => f.stop()));
    await manager?.stop();
    removeDir(dir);
  }
}
