// Which user a task runs as: the worker config's run_as by default, or one
// its allowed_users lists (TaskSpec.user). Users are looked up once, at start,
// in the system's user database (getent, so NSS sources count; /etc/passwd and
// /etc/group where getent is missing), and a name it does not know is a config
// error then rather than a failed task later.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { ConfigError } from '../../common/config.js';

export interface TaskUser {
  name: string;
  uid: number;
  gid: number;
  /** Every group the user is in (the primary one included), as initgroups(3) would set them. */
  groups: number[];
  home: string;
}

/** Where setpriv (util-linux) may be: it sets uid, gid and supplementary groups, then execs. */
const SETPRIV_PATHS = ['/usr/bin/setpriv', '/bin/setpriv'];

function run(cmd: string, args: string[]): string | undefined {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
  } catch {
    return undefined;
  }
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** A user from the system's user database, or undefined when there is none of that name. */
export function lookupUser(name: string): TaskUser | undefined {
  const line = (run('getent', ['passwd', name]) ?? readText('/etc/passwd'))
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  const f = line?.split(':');
  if (!f || f.length < 7) return undefined;
  const uid = Number(f[2]);
  const gid = Number(f[3]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) return undefined;
  return { name, uid, gid, groups: groupsOf(name, gid), home: f[5]! };
}

function groupsOf(name: string, gid: number): number[] {
  const ids = run('id', ['-G', name]);
  if (ids !== undefined) return ids.trim().split(/\s+/).map(Number);
  const groups = new Set([gid]);
  for (const line of readText('/etc/group').split('\n')) {
    const f = line.split(':');
    if (f.length >= 4 && f[3]!.split(',').includes(name)) groups.add(Number(f[2]));
  }
  return [...groups];
}

export interface TaskUsersOptions {
  run_as?: string | undefined;
  allowed_users: readonly string[];
}

export class TaskUsers {
  private constructor(
    /** The default user of every task; undefined: the worker's own. */
    readonly runAs: TaskUser | undefined,
    private readonly allowed: ReadonlyMap<string, TaskUser>,
    /** setpriv's path; undefined where it is missing (tasks then get no supplementary groups). */
    readonly setpriv: string | undefined,
    private readonly euid: number,
  ) {}

  /**
   * From the worker config. A user the system does not know is a ConfigError
   * naming the key, and so is any user but its own when the worker is not root
   * (only root may become another user).
   */
  static fromConfig(c: TaskUsersOptions, lookup: (name: string) => TaskUser | undefined = lookupUser, euid = process.geteuid?.() ?? 0): TaskUsers {
    const resolve = (key: string, name: string): TaskUser => {
      const user = lookup(name);
      if (!user) throw new ConfigError(`${key}: no user ${JSON.stringify(name)} in the system's user database`);
      if (euid !== 0 && user.uid !== euid) {
        throw new ConfigError(`${key}: the worker runs as uid ${euid}, not root, so its tasks can run only as its own user, not ${JSON.stringify(name)}`);
      }
      return user;
    };
    const runAs = c.run_as === undefined ? undefined : resolve('run_as', c.run_as);
    const allowed = new Map<string, TaskUser>();
    if (runAs) allowed.set(runAs.name, runAs);
    for (const name of c.allowed_users) if (!allowed.has(name)) allowed.set(name, resolve('allowed_users', name));
    return new TaskUsers(runAs, allowed, SETPRIV_PATHS.find((p) => existsSync(p)), euid);
  }

  /** The names a task may give (run_as and allowed_users). */
  get names(): string[] {
    return [...this.allowed.keys()];
  }

  /** True when some configured user is another than the worker's own (so setpriv matters). */
  get switches(): boolean {
    return [...this.allowed.values()].some((u) => u.uid !== this.euid);
  }

  /** Why a task may not run as `name` here (TaskSpec.user; "" is the default), or undefined when it may. */
  problem(name: string): string | undefined {
    if (name === '' || this.allowed.has(name)) return undefined;
    return `user ${JSON.stringify(name)} is not in this worker's allowed_users`;
  }

  /** The user a task runs as: its own choice (checked by problem()), else run_as; undefined: the worker's own, unchanged. */
  resolve(name: string): TaskUser | undefined {
    return name === '' ? this.runAs : this.allowed.get(name);
  }

  /** Whether running as `user` takes a change of uid (not when it is the worker's own). */
  switchesTo(user: TaskUser): boolean {
    return user.uid !== this.euid;
  }
}
