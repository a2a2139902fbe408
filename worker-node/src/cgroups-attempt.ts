// One attempt's cgroup: made with its limits before the task starts (the task
// joins it itself, before it execs the program: task-spawn.ts), signalled as a
// whole on cancel, timeout and exit, read for OOM kills, peak memory and CPU
// time when it ends, then removed once empty.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Hierarchy } from './cgroups-detect.js';
import { procsOf, removeCgroup, removeWhenEmpty, signalCgroup } from './cgroups-fs.js';

/** The CFS period: quotas are in microseconds per this many. */
const CPU_PERIOD_US = 100_000;
/** The kernel refuses a quota under 1 ms. */
const MIN_CPU_QUOTA_US = 1000;

export interface Limits {
  /** 0: no memory limit (still accounted). */
  memoryBytes: number;
  /** 0: no CPU weight (nor quota). */
  millicpu: number;
  /** Also a CFS quota of millicpu (Nomad's cpu_hard_limit): the task never gets more, even on an idle machine. */
  cpuHardLimit?: boolean;
  maxPids: number;
}

export interface CgroupStats {
  oomKilled: boolean;
  peakMemoryBytes?: number;
  cpuTimeUs?: number;
}

function readNumber(path: string): number | undefined {
  try {
    const n = Number(readFileSync(path, 'utf8').trim());
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/** A "key value" line of a flat-keyed file (memory.events, memory.oom_control, cpu.stat). */
function readKey(path: string, key: string): number | undefined {
  try {
    const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(readFileSync(path, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Writes a limit; a file the kernel does not have (memsw without swap accounting, memory.swap.max without swap) is skipped. */
function writeLimit(dir: string, file: string, value: string | number, optional = false): void {
  const path = join(dir, file);
  if (optional && !existsSync(path)) return;
  try {
    writeFileSync(path, String(value));
  } catch (err) {
    throw new Error(`cannot set ${path} to ${value}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export class AttemptCgroup {
  private sampledPeak = 0;

  private constructor(
    readonly version: 'v1' | 'v2',
    private readonly hierarchies: Hierarchy[],
  ) {}

  /**
   * Makes the cgroup `name` under each parent (the worker's run cgroups) and
   * writes its limits. On any failure what was made is removed and the error
   * thrown: a task must not run with a limit silently missing.
   */
  static create(version: 'v1' | 'v2', parents: readonly Hierarchy[], name: string, limits: Limits): AttemptCgroup {
    const made: Hierarchy[] = [];
    try {
      for (const p of parents) {
        const dir = join(p.dir, name);
        mkdirSync(dir);
        made.push({ controllers: p.controllers, dir });
      }
      const cg = new AttemptCgroup(version, made);
      for (const h of made) (version === 'v2' ? applyV2 : applyV1)(h, limits);
      return cg;
    } catch (err) {
      removeCgroup(made.map((h) => h.dir));
      throw err;
    }
  }

  get dirs(): string[] {
    return this.hierarchies.map((h) => h.dir);
  }

  /** The files a process writes its pid to, to join the cgroup in every hierarchy. */
  get procsFiles(): string[] {
    return this.hierarchies.map((h) => join(h.dir, 'cgroup.procs'));
  }

  /** v2 kernels before 5.19 have no memory.peak: the worker samples memory.current instead. */
  get needsSampling(): boolean {
    return this.version === 'v2' && this.hierarchies.some((h) => h.controllers.includes('memory')) && !existsSync(join(this.hierarchies[0]!.dir, 'memory.peak'));
  }

  sample(): void {
    const current = readNumber(join(this.hierarchies[0]!.dir, 'memory.current'));
    if (current !== undefined && current > this.sampledPeak) this.sampledPeak = current;
  }

  /** The processes in it now. */
  procs(): number[] {
    return procsOf(this.dirs);
  }

  /** Signals every process in it (one pass; see signalCgroup); returns how many there were. */
  signal(signal: NodeJS.Signals): number {
    return signalCgroup(this.dirs, signal);
  }

  /** What the kernel counted. sigkilled: the task ended by SIGKILL (old v1 kernels say OOM only through failcnt). */
  stats(sigkilled: boolean): CgroupStats {
    const stats: CgroupStats = { oomKilled: false };
    for (const { controllers, dir } of this.hierarchies) {
      if (this.version === 'v2') {
        if (controllers.includes('memory')) {
          if (this.needsSampling) this.sample();
          stats.oomKilled = (readKey(join(dir, 'memory.events'), 'oom_kill') ?? 0) > 0;
          const peak = readNumber(join(dir, 'memory.peak')) ?? this.sampledPeak;
          if (peak > 0) stats.peakMemoryBytes = peak;
        }
        const usec = readKey(join(dir, 'cpu.stat'), 'usage_usec');
        if (usec !== undefined) stats.cpuTimeUs = usec;
        continue;
      }
      if (controllers.includes('memory')) {
        const kills = readKey(join(dir, 'memory.oom_control'), 'oom_kill');
        stats.oomKilled = kills !== undefined ? kills > 0 : sigkilled && (readNumber(join(dir, 'memory.failcnt')) ?? 0) > 0;
        const peak = readNumber(join(dir, 'memory.max_usage_in_bytes'));
        if (peak !== undefined) stats.peakMemoryBytes = peak;
      }
      if (controllers.includes('cpuacct')) {
        const ns = readNumber(join(dir, 'cpuacct.usage'));
        if (ns !== undefined) stats.cpuTimeUs = Math.round(ns / 1000);
      }
    }
    return stats;
  }

  /** Kills what is left in it and removes it once empty; resolves true when it is gone. */
  async release(): Promise<boolean> {
    const left = await removeWhenEmpty([this.dirs], { unref: true });
    return left.length === 0;
  }
}

function applyV1({ controllers, dir }: Hierarchy, limits: Limits): void {
  if (controllers.includes('memory') && limits.memoryBytes > 0) {
    writeLimit(dir, 'memory.limit_in_bytes', limits.memoryBytes);
    // Else swap would take what the limit refuses (memsw counts memory and swap together).
    writeLimit(dir, 'memory.memsw.limit_in_bytes', limits.memoryBytes, true);
  }
  if (controllers.includes('cpu') && limits.millicpu > 0) {
    writeLimit(dir, 'cpu.shares', Math.max(2, Math.round((limits.millicpu * 1024) / 1000)));
    if (limits.cpuHardLimit) {
      writeLimit(dir, 'cpu.cfs_period_us', CPU_PERIOD_US);
      writeLimit(dir, 'cpu.cfs_quota_us', cpuQuotaUs(limits.millicpu));
    }
  }
  if (controllers.includes('pids')) writeLimit(dir, 'pids.max', limits.maxPids);
}

function applyV2({ controllers, dir }: Hierarchy, limits: Limits): void {
  if (controllers.includes('memory') && limits.memoryBytes > 0) {
    writeLimit(dir, 'memory.max', limits.memoryBytes);
    writeLimit(dir, 'memory.swap.max', 0, true);
  }
  if (controllers.includes('cpu') && limits.millicpu > 0) {
    // weight 100 is the default, one core's share, as cpu.shares 1024 is on v1.
    writeLimit(dir, 'cpu.weight', Math.min(10_000, Math.max(1, Math.round(limits.millicpu / 10))));
    if (limits.cpuHardLimit) writeLimit(dir, 'cpu.max', `${cpuQuotaUs(limits.millicpu)} ${CPU_PERIOD_US}`);
  }
  if (controllers.includes('pids')) writeLimit(dir, 'pids.max', limits.maxPids);
}

const cpuQuotaUs = (millicpu: number): number => Math.max(MIN_CPU_QUOTA_US, Math.round((millicpu * CPU_PERIOD_US) / 1000));
