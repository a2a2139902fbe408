// The baseline every e2e figure is a ratio of: bare spawns of /bin/true from a fresh, small
// node process (bench/spawn-child.mjs), as a worker's would be, never from the bench's own
// heap. Measured first, before anything else runs or grows: 1 and 16 in flight, then two such
// processes at once (the e2e cluster has two workers), and the CPU one spawn costs, the child
// included (/proc).
import { join } from 'node:path';
import { ROOT } from '../test/support/processes.js';
import { CLK_TCK } from './proc-cpu.js';
import { LineChild } from './procs.js';

export interface SpawnBaseline {
  /** 16 in flight, one process: THE baseline of e2e_vs_spawn_ratio. */
  spawn_fresh_per_s: number;
  spawn_fresh_1_per_s: number;
  /** Two processes at once, 16 in flight each: spawns per second of both together. */
  spawn_fresh_x2_per_s: number;
  /** CPU of one spawn, parent and child (/bin/true) together, 1 in flight. */
  spawn_cpu_ms: number;
  /** The parent's part of it. */
  spawn_cpu_parent_ms: number;
  /** CPU of one spawn, 16 in flight. */
  spawn_cpu_16_ms: number;
  /** Machine-wide busy time per spawn over the 1-in-flight window: spawn_cpu_ms plus whatever else ran. */
  spawn_machine_cpu_ms: number;
  /** Mean wall time of one spawn, 1 in flight. */
  spawn_ms: number;
}

interface Done {
  spawns: number;
  ms: number;
  cpuMs: number;
  selfMs: number;
  machineMs: number;
}

function fresh(spawns: number, inFlight: number): LineChild {
  return new LineChild(process.execPath, [join(ROOT, 'bench/spawn-child.mjs'), String(spawns), String(inFlight)], {
    ...process.env,
    CLK_TCK: String(CLK_TCK),
  });
}

/** Starts `procs` fresh processes, lets them warm up, starts them together; their results. */
async function together(procs: number, spawns: number, inFlight: number): Promise<{ runs: Done[]; ms: number }> {
  const children = Array.from({ length: procs }, () => fresh(spawns, inFlight));
  try {
    await Promise.all(children.map((c) => c.next('ready', 30_000)));
    const t0 = performance.now();
    for (const c of children) c.send({ go: true });
    const runs = (await Promise.all(children.map((c) => c.next('done', 120_000)))) as unknown as Done[];
    return { runs, ms: performance.now() - t0 };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
  }
}

/**
 * About `seconds` of spawning per measurement, sized from a short probe (this machine may
 * spawn 50/s or 2,000/s).
 */
export async function measureSpawnBaseline(seconds = 3): Promise<SpawnBaseline> {
  const probe = (await together(1, 40, 1)).runs[0]!;
  const rate = probe.spawns / (probe.ms / 1000);
  const n = (s: number) => Math.max(100, Math.min(5000, Math.round(rate * s)));

  const one = (await together(1, n(seconds), 1)).runs[0]!;
  const sixteen = (await together(1, n(seconds), 16)).runs[0]!;
  const two = await together(2, n(seconds), 16);
  const perS = (d: Done) => d.spawns / (d.ms / 1000);
  // Both processes' spawns over the span from the common start to the later one's end.
  const x2 = two.runs.reduce((s, d) => s + d.spawns, 0) / (Math.max(...two.runs.map((d) => d.ms)) / 1000);
  return {
    spawn_fresh_per_s: perS(sixteen),
    spawn_fresh_1_per_s: perS(one),
    spawn_fresh_x2_per_s: x2,
    spawn_cpu_ms: one.cpuMs / one.spawns,
    spawn_cpu_parent_ms: one.selfMs / one.spawns,
    spawn_cpu_16_ms: sixteen.cpuMs / sixteen.spawns,
    spawn_machine_cpu_ms: one.machineMs / one.spawns,
    spawn_ms: one.ms / one.spawns,
  };
}
