// Task cgroups (as Slurm's task/cgroup and Nomad's exec driver do): each
// attempt runs in a cgroup of its own with its memory, CPU and pids limits,
// nested under the worker's own cgroup, so the worker never moves a process
// out of the subtree it was started in (a service manager, a container or a
// login session keeps its own accounting and limits above it):
//
//   <own>/sched-<worker id, 8>/<run id>/<task id>.<attempt>
//
// in each v1 hierarchy (memory, cpu, cpuacct, pids, freezer), or once on v2.
// The run level lets the watchdog kill its own run's tasks and a restarted
// worker find what an earlier run left. Where nothing can be made (not root,
// read-only, `cgroups: off`), tasks run without limits and Isolation says why.
import { mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkTaskId, type TaskRef } from './task-id.js';
import { detectCgroups, type CgroupLayout, type Hierarchy } from './cgroups-detect.js';
import { AttemptCgroup, type Limits } from './cgroups-attempt.js';
import { childCgroups, childrenOf, readProcs, removeWhenEmpty, signalCgroup } from './cgroups-fs.js';

export { AttemptCgroup, type CgroupStats, type Limits } from './cgroups-attempt.js';

/** How often memory.current is sampled on v2 kernels without memory.peak. */
const SAMPLE_MS = 1000;
/** The leaf a v2 worker moves itself (and whatever shares its cgroup) into, so its own cgroup may have controllers for children. */
const V2_WORKER_LEAF = 'worker';

export interface CgroupsOptions {
  mode: 'auto' | 'off';
  workerId: string;
  runId: string;
  /** Added to every memory limit. */
  memoryHeadroom: number;
  /** The pids limit of a task that sets none. */
  maxPids: number;
  /** A CPU quota besides the weight (cpu_hard_limit). */
  cpuHardLimit?: boolean;
  /** Where the worker's cgroups are; detected from /proc/self by default. */
  layout?: CgroupLayout;
}

export interface CgroupsSetup {
  cgroups: Cgroups | undefined;
  /** Isolation.cgroups: v1, v2, or "" when limits are not enforced. */
  version: 'v1' | 'v2' | '';
  /** Isolation.limits_note: why not, or which limits are missing; "" when all are enforced. */
  note: string;
}

/** An attempt found in a cgroup left by an earlier run of this worker, with the processes killed in it. */
export interface LeftoverAttempt {
  task: TaskRef;
  pids: number[];
}

export function setupCgroups(o: CgroupsOptions): CgroupsSetup {
  if (o.mode === 'off') return { cgroups: undefined, version: '', note: 'cgroups: off in the worker config' };
  const layout = o.layout ?? detectCgroups();
  if (layout.version === '') return { cgroups: undefined, version: '', note: layout.note };
  const workerDirs: Hierarchy[] = [];
  const runDirs: Hierarchy[] = [];
  const problems: string[] = [];
  for (const own of layout.hierarchies) {
    try {
      const controllers = layout.version === 'v2' ? enableV2(own.dir, own.controllers) : own.controllers;
      const workerDir = join(own.dir, `sched-${o.workerId.slice(0, 8)}`);
      const runDir = join(workerDir, o.runId);
      mkdirSync(runDir, { recursive: true });
      if (layout.version === 'v2') for (const dir of [workerDir, runDir]) enableControllers(dir, controllers);
      workerDirs.push({ controllers, dir: workerDir });
      runDirs.push({ controllers, dir: runDir });
    } catch (err) {
      problems.push(`cannot make cgroups under ${own.dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  if (runDirs.length === 0) return { cgroups: undefined, version: '', note: problems.join('; ') };
  const have = new Set(runDirs.flatMap((h) => h.controllers));
  const missing = ['memory', 'cpu', 'pids'].filter((c) => !have.has(c));
  if (missing.length > 0) problems.unshift(`no ${missing.join(', ')} controller: ${missing.length > 1 ? 'those limits are' : 'that limit is'} not enforced`);
  return { cgroups: new Cgroups(layout.version, workerDirs, runDirs, o), version: layout.version, note: problems.join('; ') };
}

/**
 * v2 lets a cgroup with processes have no controllers for its children ("no
 * internal processes"): where the worker's own cgroup refuses, what is in it
 * (the worker, and whatever shares its cgroup) moves into a leaf below it first.
 * Returns the controllers enabled.
 */
function enableV2(own: string, controllers: readonly string[]): string[] {
  try {
    return enableControllers(own, controllers);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EBUSY') throw err;
  }
  const leaf = join(own, V2_WORKER_LEAF);
  mkdirSync(leaf, { recursive: true });
  for (const pid of readProcs(own)) {
    try {
      writeFileSync(join(leaf, 'cgroup.procs'), String(pid));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err; // gone meanwhile
    }
  }
  return enableControllers(own, controllers);
}

/** Enables each controller for a cgroup's children: those the kernel refuses are left out, unless it refuses all. */
function enableControllers(dir: string, controllers: readonly string[]): string[] {
  const enabled: string[] = [];
  let error: unknown;
  for (const c of controllers) {
    try {
      writeFileSync(join(dir, 'cgroup.subtree_control'), `+${c}`);
      enabled.push(c);
    } catch (err) {
      error ??= err;
    }
  }
  if (enabled.length === 0 && error) throw error;
  return enabled;
}

export class Cgroups {
  private readonly live = new Set<AttemptCgroup>();
  private readonly releasing = new Set<Promise<boolean>>();
  private sampler: NodeJS.Timeout | undefined;

  constructor(
    readonly version: 'v1' | 'v2',
    /** <own>/sched-<id>: one per hierarchy. */
    private readonly workerDirs: readonly Hierarchy[],
    /** <own>/sched-<id>/<run>: the parents of this run's attempts. */
    private readonly runDirs: readonly Hierarchy[],
    private readonly o: Pick<CgroupsOptions, 'memoryHeadroom' | 'maxPids' | 'cpuHardLimit'>,
  ) {}

  /** This run's directories (the watchdog kills what is below them). */
  get runPaths(): string[] {
    return this.runDirs.map((h) => h.dir);
  }

  /** The cgroup of an attempt, made with its limits (memory plus the headroom; the worker's pids limit unless the task set one). */
  create(task: TaskRef, want: { memoryBytes: number; millicpu: number; maxPids?: number }): AttemptCgroup {
    const limits: Limits = {
      memoryBytes: want.memoryBytes > 0 ? want.memoryBytes + this.o.memoryHeadroom : 0,
      millicpu: want.millicpu,
      maxPids: want.maxPids || this.o.maxPids,
      cpuHardLimit: this.o.cpuHardLimit ?? false,
    };
    const cg = AttemptCgroup.create(this.version, this.runDirs, `${task.taskId}.${task.attempt}`, limits);
    if (cg.needsSampling) {
      this.live.add(cg);
      this.sampler ??= setInterval(() => {
        for (const c of this.live) c.sample();
      }, SAMPLE_MS).unref();
    }
    return cg;
  }

  /** Done with an attempt's cgroup (its stats read): what is left in it is killed and it is removed. */
  release(cg: AttemptCgroup): void {
    this.live.delete(cg);
    if (this.live.size === 0) {
      clearInterval(this.sampler);
      this.sampler = undefined;
    }
    const p = cg.release().finally(() => this.releasing.delete(p));
    this.releasing.add(p);
  }

  /**
   * SIGKILLs what earlier runs of this worker left in their cgroups (a worker
   * killed before its watchdog could act) and removes those cgroups once empty.
   * Returns each attempt that still had processes.
   */
  killLeftovers(): LeftoverAttempt[] {
    const found: LeftoverAttempt[] = [];
    const ours = new Set(this.runDirs.map((h) => h.dir));
    const runs = new Set(this.workerDirs.flatMap((h) => childCgroups(h.dir)));
    const emptied: string[][] = [];
    for (const run of runs) {
      const dirs = this.workerDirs.map((h) => join(h.dir, run));
      if (dirs.some((d) => ours.has(d))) continue;
      for (const [name, attempt] of childrenOf(dirs)) {
        signalCgroup(attempt.dirs, 'SIGKILL');
        emptied.push(attempt.dirs);
        const task = parseAttempt(name);
        if (task && attempt.pids.length > 0) found.push({ task, pids: attempt.pids });
      }
      emptied.push(dirs); // after its children: removeWhenEmpty goes in order
    }
    if (emptied.length > 0) {
      const p = removeWhenEmpty(emptied, { unref: true }).then((left) => left.length === 0);
      this.releasing.add(p.finally(() => this.releasing.delete(p)));
    }
    return found;
  }

  /** After the last task: waits for the cgroups being removed, then removes this run's (and the worker's, when no other run is left). */
  async close(): Promise<void> {
    clearInterval(this.sampler);
    await Promise.all(this.releasing);
    this.discard();
  }

  /** Removes this run's cgroups (and the worker's, when no other run is left) where they are empty. */
  discard(): void {
    for (const dir of [...this.runDirs, ...this.workerDirs].map((h) => h.dir)) {
      try {
        rmdirSync(dir);
      } catch {
        // still in use (a task being killed, another run's leftovers): the next start sweeps it
      }
    }
  }
}

/** "<task id>.<attempt>" back into a TaskRef, when it is one. */
function parseAttempt(name: string): TaskRef | undefined {
  const dot = name.lastIndexOf('.');
  const taskId = name.slice(0, dot);
  const attempt = Number(name.slice(dot + 1));
  if (dot < 1 || checkTaskId(taskId) || !Number.isInteger(attempt) || attempt < 0) return undefined;
  return { taskId, attempt };
}
