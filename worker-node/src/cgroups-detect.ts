// Where this process's cgroups are: its own cgroup in each hierarchy, from
// /proc/self/cgroup and the cgroup mounts of /proc/self/mountinfo. Pure reads:
// cgroups.ts makes the task cgroups under what this finds. Every path is read
// below `root` (/ on a real machine, a tmp dir in the tests).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The v1 controllers a task cgroup uses (cpuset is not: a new cpuset cgroup needs cpus and mems set before anything can join it). */
export const V1_CONTROLLERS = ['memory', 'cpu', 'cpuacct', 'pids', 'freezer'] as const;
/** The v2 controllers a task cgroup enables (freezing and killing are built into v2). */
export const V2_CONTROLLERS = ['memory', 'cpu', 'pids'] as const;

export interface Hierarchy {
  /** The controllers this hierarchy carries that a task cgroup uses (all of V2_CONTROLLERS available there, on v2). */
  controllers: string[];
  /** The worker's own cgroup in it: an absolute path (below root). */
  dir: string;
}

export type CgroupLayout = { version: 'v1' | 'v2'; hierarchies: Hierarchy[] } | { version: ''; note: string };

interface Mount {
  /** The cgroup path the mount shows at its mount point (not / inside a cgroup namespace's bind mount of a sub-tree). */
  root: string;
  point: string;
  fstype: string;
  /** The super options: the v1 controllers (and name=...) */
  options: string[];
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** The cgroup and cgroup2 mounts listed in a mountinfo text. */
export function cgroupMounts(mountinfo: string): Mount[] {
  const mounts: Mount[] = [];
  for (const line of mountinfo.split('\n')) {
    // ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER-OPTIONS
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (dash < 6 || fields.length < dash + 4) continue;
    const fstype = fields[dash + 1]!;
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue;
    mounts.push({ root: unescape(fields[3]!), point: unescape(fields[4]!), fstype, options: fields[dash + 3]!.split(',') });
  }
  return mounts;
}

/** The process's cgroup per hierarchy, from a /proc/<pid>/cgroup text: "" for v2's, the controller list for v1's. */
export function ownCgroups(procCgroup: string): Map<string, string> {
  const own = new Map<string, string>();
  for (const line of procCgroup.split('\n')) {
    const m = /^\d+:([^:]*):(\/.*)$/.exec(line);
    if (m) own.set(m[1]!, m[2]!);
  }
  return own;
}

/** Where a cgroup path of a hierarchy is under a mount of it, or undefined when the mount does not show it. */
function dirIn(mount: Mount, path: string): string | undefined {
  let rel: string;
  if (mount.root === '/') rel = path;
  else if (path === mount.root || path.startsWith(`${mount.root}/`)) rel = path.slice(mount.root.length);
  else return undefined;
  return join(mount.point, rel).replace(/(.)\/$/, '$1');
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * The cgroup hierarchies a worker can nest task cgroups in. v2 when its unified
 * hierarchy offers controllers at the worker's cgroup; else v1's per-controller
 * hierarchies (a v2 mount without controllers, as on a hybrid system, is not used).
 */
export function detectCgroups(root = '/'): CgroupLayout {
  const procCgroup = readText(join(root, 'proc/self/cgroup'));
  const mountinfo = readText(join(root, 'proc/self/mountinfo'));
  if (procCgroup === undefined || mountinfo === undefined) return { version: '', note: 'no /proc/self/cgroup (not Linux, or no cgroups)' };
  const own = ownCgroups(procCgroup);
  const mounts = cgroupMounts(mountinfo);

  const v2Path = own.get('');
  if (v2Path !== undefined) {
    for (const mount of mounts.filter((m) => m.fstype === 'cgroup2')) {
      const dir = dirIn(mount, v2Path);
      if (dir === undefined) continue;
      const available = (readText(join(root, dir, 'cgroup.controllers')) ?? '').split(/\s+/);
      const controllers = V2_CONTROLLERS.filter((c) => available.includes(c));
      if (controllers.length > 0) return { version: 'v2', hierarchies: [{ controllers, dir: join(root, dir) }] };
    }
  }

  const hierarchies: Hierarchy[] = [];
  for (const [list, path] of own) {
    const controllers = V1_CONTROLLERS.filter((c) => list.split(',').includes(c));
    if (controllers.length === 0) continue;
    for (const mount of mounts.filter((m) => m.fstype === 'cgroup' && controllers.every((c) => m.options.includes(c)))) {
      const dir = dirIn(mount, path);
      if (dir === undefined) continue;
      hierarchies.push({ controllers, dir: join(root, dir) });
      break;
    }
  }
  if (hierarchies.length > 0) return { version: 'v1', hierarchies };
  return { version: '', note: mounts.length === 0 ? 'no cgroup file system is mounted' : 'no cgroup hierarchy with the memory, cpu or pids controller is mounted where this process can see its cgroup' };
}
