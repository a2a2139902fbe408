// The few cgroup file operations shared by the executor (cgroups-attempt.ts),
// a restarted worker's leftover sweep (cgroups.ts) and the watchdog: who is in
// a cgroup, signal them all, remove it. v1 and v2 alike: an attempt's cgroup is
// one directory per hierarchy (one on v2), and what a file tells is found by
// whether it exists there.
import { existsSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The processes in one cgroup directory (empty when it is gone). */
export function readProcs(dir: string): number[] {
  let text: string;
  try {
    text = readFileSync(join(dir, 'cgroup.procs'), 'utf8');
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const line of text.split('\n')) if (line) pids.push(Number(line));
  return pids;
}

/** The processes of one cgroup across its hierarchies. */
export function procsOf(dirs: readonly string[]): number[] {
  if (dirs.length === 1) return readProcs(dirs[0]!);
  const all = new Set<number>();
  for (const dir of dirs) for (const pid of readProcs(dir)) all.add(pid);
  return [...all];
}

/** Writes a control file; false when it does not exist (a controller or kernel without it) or the write fails. */
function tryWrite(path: string, value: string): boolean {
  try {
    writeFileSync(path, value);
    return true;
  } catch {
    return false;
  }
}

/**
 * One pass over a cgroup: freeze it where a freezer is (so nothing forks between
 * the read of its processes and their signals), signal every process, thaw.
 * SIGKILL on v2 with cgroup.kill is one write. Returns how many processes it
 * found; a caller that must see them gone repeats until 0.
 */
export function signalCgroup(dirs: readonly string[], signal: NodeJS.Signals): number {
  if (signal === 'SIGKILL' && dirs.length === 1 && existsSync(join(dirs[0]!, 'cgroup.kill'))) {
    const n = readProcs(dirs[0]!).length;
    if (n > 0) tryWrite(join(dirs[0]!, 'cgroup.kill'), '1');
    return n;
  }
  const pids = procsOf(dirs);
  if (pids.length === 0) return 0;
  const thaw = freeze(dirs);
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // exited meanwhile
    }
  }
  thaw?.();
  return pids.length;
}

/** Freezes a cgroup (v1 freezer.state, v2 cgroup.freeze) where it can; returns the thaw. */
function freeze(dirs: readonly string[]): (() => void) | undefined {
  for (const dir of dirs) {
    const v1 = join(dir, 'freezer.state');
    if (existsSync(v1)) return tryWrite(v1, 'FROZEN') ? () => tryWrite(v1, 'THAWED') : undefined;
    const v2 = join(dir, 'cgroup.freeze');
    if (existsSync(v2)) return tryWrite(v2, '1') ? () => tryWrite(v2, '0') : undefined;
  }
  return undefined;
}

/** Removes a cgroup's directories; true once none is left (false while processes remain in one). */
export function removeCgroup(dirs: readonly string[]): boolean {
  let gone = true;
  for (const dir of dirs) {
    try {
      rmdirSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') gone = false;
    }
  }
  return gone;
}

/** The names of a cgroup directory's child cgroups. */
export function childCgroups(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
  } catch {
    return [];
  }
}

/**
 * SIGKILLs what is in each cgroup (a list of its directories) until it is
 * empty, and removes it; retried every everyMs, tries times at most (a dying
 * process leaves its cgroup a moment after its SIGKILL). Resolves with those
 * still there at the end (a later sweep gets them). unref: the retries do not
 * keep the process alive.
 */
export async function removeWhenEmpty(cgroups: readonly (readonly string[])[], o: { tries?: number; everyMs?: number; unref?: boolean } = {}): Promise<(readonly string[])[]> {
  let left = [...cgroups];
  for (let i = 0; left.length > 0 && i < (o.tries ?? 100); i++) {
    if (i > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, o.everyMs ?? 20);
        if (o.unref) t.unref();
      });
    }
    left = left.filter((dirs) => signalCgroup(dirs, 'SIGKILL') > 0 || !removeCgroup(dirs));
  }
  return left;
}

/** The cgroups below `parents` (the same directory in each hierarchy, e.g. one run of a worker) and the processes in each, by name. */
export function childrenOf(parents: readonly string[]): Map<string, { dirs: string[]; pids: number[] }> {
  const found = new Map<string, { dirs: string[]; pids: number[] }>();
  for (const name of new Set(parents.flatMap(childCgroups))) {
    const dirs = parents.map((p) => join(p, name));
    found.set(name, { dirs, pids: procsOf(dirs) });
  }
  return found;
}
