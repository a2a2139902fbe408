// CPU time and memory of processes and of the machine, read from /proc (Linux only).
//
// Times in /proc/<pid>/stat are in clock ticks (USER_HZ); the kernel derives utime+stime
// from the scheduler's exact runtime, so sums over many tasks are good to well under a tick
// per task. cutime+cstime hold what the process's reaped children used: for a worker, the
// tasks it ran (they are counted, as a bare spawn's child is counted in spawn_cpu_ms).
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second (getconf CLK_TCK; 100 on every Linux this runs on). */
export const CLK_TCK: number = (() => {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isFinite(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();
const MS_PER_TICK = 1000 / CLK_TCK;

export interface ProcStat {
  pid: number;
  ppid: number;
  /** Own CPU, user and system, ms. */
  selfMs: number;
  /** CPU of reaped children (and theirs), ms. */
  childrenMs: number;
}

/** One /proc/<pid>/stat, or undefined once the process is gone. */
export function procStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm (field 2) may hold spaces and parentheses: split after its last ')'.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const n = (i: number) => Number(f[i - 3]); // field i of proc(5), 1-based
  return { pid, ppid: n(4), selfMs: (n(14) + n(15)) * MS_PER_TICK, childrenMs: (n(16) + n(17)) * MS_PER_TICK };
}

/** Resident set size in KiB (VmRSS), or 0 once the process is gone. */
export function rssKiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Pids of the live children of pid (a scan of /proc). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    if (procStat(Number(name))?.ppid === pid) out.push(Number(name));
  }
  return out;
}

/** CPU the whole machine spent not idle (all cores, every process and the kernel), ms. */
export function machineBusyMs(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already inside user)
  const busy = (v[0] ?? 0) + (v[1] ?? 0) + (v[2] ?? 0) + (v[5] ?? 0) + (v[6] ?? 0) + (v[7] ?? 0);
  return busy * MS_PER_TICK;
}

/** A process counted by a CpuMeter: its own CPU, and its reaped children's when withChildren. */
export interface Counted {
  pid: number;
  withChildren: boolean;
}

/**
 * Named groups of processes whose CPU is read before and after a measured window. A process
 * that is gone at the end counts for nothing (and is reported in `lost`).
 */
export class CpuMeter {
  private start = new Map<number, number>();
  private last = new Map<number, number>();
  private startChildren = new Map<number, number>();
  private lastChildren = new Map<number, number>();
  private machineStart = 0;
  private t0 = 0;
  readonly lost: number[] = [];

  constructor(private readonly groups: Record<string, Counted[]>) {}

  private read(into: Map<number, number>, intoChildren: Map<number, number>): void {
    for (const list of Object.values(this.groups)) {
      for (const p of list) {
        const s = procStat(p.pid);
        if (!s) {
          if (!this.lost.includes(p.pid)) this.lost.push(p.pid);
          continue;
        }
        into.set(p.pid, s.selfMs);
        intoChildren.set(p.pid, s.childrenMs);
      }
    }
  }

  begin(): void {
    this.read(this.start, this.startChildren);
    this.machineStart = machineBusyMs();
    this.t0 = performance.now();
  }

  /** CPU ms of each group over the window (own + reaped children where asked), plus the split. */
  end(): { byGroup: Record<string, number>; selfByGroup: Record<string, number>; machineMs: number; wallMs: number } {
    const wallMs = performance.now() - this.t0;
    const machineMs = machineBusyMs() - this.machineStart;
    this.read(this.last, this.lastChildren);
    const byGroup: Record<string, number> = {};
    const selfByGroup: Record<string, number> = {};
    for (const [name, list] of Object.entries(this.groups)) {
      let self = 0;
      let children = 0;
      for (const p of list) {
        const s0 = this.start.get(p.pid) ?? 0;
        const c0 = this.startChildren.get(p.pid) ?? 0;
        self += (this.last.get(p.pid) ?? s0) - s0;
        if (p.withChildren) children += (this.lastChildren.get(p.pid) ?? c0) - c0;
      }
      byGroup[name] = self + children;
      selfByGroup[name] = self;
    }
    return { byGroup, selfByGroup, machineMs, wallMs };
  }
}
