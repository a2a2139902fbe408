// schedctl, the built binary, as a user runs it: its start-up (against `node -e 0`), and
// `workers ls` / `tasks ls` against a manager holding many workers or tasks. A command's figure
// is its wall time minus the process start (`schedctl --version`, timed alongside under the
// same load), so it is what the command itself costs.
import { BIN } from '../test/support/processes.js';
import { median, removeDir, sleep, startFleet, startManager, tempDir, timeRun, type LineChild, type Manager } from './procs.js';

export interface CliStart {
  /** median(schedctl --version) − median(node -e 0). */
  cli_start_ms: number;
  schedctl_version_ms: number;
  node_start_ms: number;
}

export async function measureCliStart(runs = 10): Promise<CliStart> {
  const version: number[] = [];
  const node: number[] = [];
  // Interleaved, so a burst of load elsewhere hits both alike.
  for (let i = 0; i < runs; i++) {
    version.push(await timeRun(BIN.schedctl, ['--version'], 30_000));
    node.push(await timeRun(process.execPath, ['-e', '0'], 30_000, true));
  }
  const v = median(version);
  const n = median(node);
  return { cli_start_ms: v - n, schedctl_version_ms: v, node_start_ms: n };
}

/**
 * Times `schedctl <args>` a few times (once when it is slow), and `schedctl --version` as
 * often; the command's median wall time, and that minus the process start.
 */
async function timeCommand(address: string, args: string[], timeoutMs: number): Promise<{ wall_ms: number; net_ms: number; start_ms: number; runs: number }> {
  const argv = ['--manager', address, ...args];
  const walls = [await timeRun(BIN.schedctl, argv, timeoutMs)];
  const starts = [await timeRun(BIN.schedctl, ['--version'], 30_000)];
  // More looks only when cheap: every run is a spawn and a full listing.
  const more = walls[0]! < 3000 ? 2 : 0;
  for (let i = 0; i < more; i++) {
    walls.push(await timeRun(BIN.schedctl, argv, timeoutMs));
    starts.push(await timeRun(BIN.schedctl, ['--version'], 30_000));
  }
  const wall = median(walls);
  const start = median(starts);
  return { wall_ms: wall, net_ms: Math.max(0, wall - start), start_ms: start, runs: walls.length };
}

async function waitFinished(m: Manager, n: number, timeoutMs: number): Promise<{ done: number; dead: number }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await m.client.status({}, { deadlineMs: 10_000 });
    const done = s.tasksByState['done'] ?? 0;
    const dead = s.tasksByState['dead'] ?? 0;
    if (done + dead >= n) return { done, dead };
    if (Date.now() > deadline) throw new Error(`${done + dead} of ${n} tasks finished after ${timeoutMs}ms`);
    await sleep(250);
  }
}

export interface CliListings {
  workers_ls_5000_ms?: number;
  workers_ls_5000_wall_ms?: number;
  tasks_ls_10000_ms?: number;
  tasks_ls_10000_wall_ms?: number;
  /** schedctl --version under the same load, subtracted from both. */
  cli_process_start_ms?: number;
  tasks_ls_dead?: number;
  /** Until the fleet was all welcomed, and until the tasks were all finished (context: not targets). */
  listings_fleet_connect_s?: number;
  listings_tasks_finish_s?: number;
  errors: string[];
}

/**
 * One manager (embedded store), a fleet of `workers` fake workers; `workers ls`; then `tasks`
 * tasks submitted in one RunTask (count) that the fake workers finish at once; `tasks ls --limit 0`.
 */
export async function measureListings(workers = 5000, tasks = 10_000): Promise<CliListings> {
  const dir = tempDir('sched-bench-cli-');
  const out: CliListings = { errors: [] };
  let manager: Manager | undefined;
  let fleet: LineChild | undefined;
  try {
    manager = await startManager(dir, 'manager', `store: {type: embedded, path: ${dir}/db}`);
    let t0 = performance.now();
    fleet = await startFleet(manager.address, workers, 'ls');
    out.listings_fleet_connect_s = (performance.now() - t0) / 1000;
    await sleep(1000); // the Hellos' store writes settle
    try {
      const w = await timeCommand(manager.address, ['workers', 'ls'], 60_000);
      out.workers_ls_5000_ms = w.net_ms;
      out.workers_ls_5000_wall_ms = w.wall_ms;
      out.cli_process_start_ms = w.start_ms;
    } catch (err) {
      out.errors.push(`workers ls: ${(err as Error).message}`);
    }
    try {
      t0 = performance.now();
      await manager.client.runTask({ spec: { argv: ['/bin/true'] }, count: tasks }, { deadlineMs: 60_000 });
      const { dead } = await waitFinished(manager, tasks, 120_000);
      out.listings_tasks_finish_s = (performance.now() - t0) / 1000;
      out.tasks_ls_dead = dead;
      const t = await timeCommand(manager.address, ['tasks', 'ls', '--limit', '0'], 60_000);
      out.tasks_ls_10000_ms = t.net_ms;
      out.tasks_ls_10000_wall_ms = t.wall_ms;
      out.cli_process_start_ms ??= t.start_ms;
    } catch (err) {
      out.errors.push(`tasks ls: ${(err as Error).message}`);
    }
    return out;
  } finally {
    await fleet?.stop();
    await manager?.stop();
    removeDir(dir);
  }
}
