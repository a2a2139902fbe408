// How a task process is spawned. Without cgroups and without another user,
// the program itself (as ever). Otherwise through one small /bin/sh that writes
// its own pid to each of the attempt's cgroup.procs files and then execs the
// program (through setpriv to become the task's user: joining needs root, so it
// comes first): the task is in its cgroup before the program runs, so nothing
// it forks escapes. The program's argv goes to the shell as positional
// arguments, never into the script.
import { accessSync, constants, existsSync, statSync, writeFileSync } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import type { TaskUser } from './run-as.js';

/** $1: how many cgroup.procs files follow; then those files; then the command. */
const WRAPPER = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo "$$" >"$1" || exit 126; shift; n=$((n-1)); done; exec "$@"';
const SHELL = '/bin/sh';

export interface SpawnPlan {
  file: string;
  args: string[];
  /** Node's own uid/gid switch (no supplementary groups): only where setpriv is missing. */
  uid?: number;
  gid?: number;
  /** Files to write the child's pid to once it exists (the setpriv-less fallback cannot join before exec). */
  lateJoins?: string[];
}

/** Why the program cannot start, as Node's spawn would report it (127: not found, 126: the rest). */
export interface SpawnProblem {
  error: string;
  exitCode: number;
}

export interface SpawnOptions {
  cwd?: string | undefined;
  /** The task's PATH, where a bare program name is looked for. */
  path: string;
  /** cgroup.procs files to join before the program runs. */
  joins: readonly string[];
  /** Become this user (a uid other than the worker's). */
  user?: TaskUser | undefined;
  /** setpriv's path, where there is one. */
  setpriv?: string | undefined;
}

export function planSpawn(argv: readonly string[], o: SpawnOptions): SpawnPlan | SpawnProblem {
  const [program = '', ...rest] = argv;
  if (o.joins.length === 0 && !o.user) return { file: program, args: rest };
  // The shell, not the program, is what Node spawns: a program that cannot start must be
  // found out here, or its start failure would look like a shell's exit 127 or 126.
  const problem = checkProgram(program, o.cwd, o.path);
  if (problem) return problem;
  if (o.user && !o.setpriv) {
    return { file: program, args: rest, uid: o.user.uid, gid: o.user.gid, ...(o.joins.length > 0 ? { lateJoins: [...o.joins] } : {}) };
  }
  const become = o.user && o.setpriv ? [o.setpriv, `--reuid=${o.user.uid}`, `--regid=${o.user.gid}`, '--init-groups', '--'] : [];
  return { file: SHELL, args: ['-c', WRAPPER, 'sched-task', String(o.joins.length), ...o.joins, ...become, ...argv] };
}

/** What execvp would fail with for this program, as Node words it; undefined when it can be executed. */
export function checkProgram(program: string, cwd: string | undefined, path: string): SpawnProblem | undefined {
  if (program.includes('\0')) return { error: `spawn ${program} ERR_INVALID_ARG_VALUE`, exitCode: 126 };
  const base = cwd || process.cwd();
  if (cwd && !existsSync(cwd)) return { error: `spawn ${program} ENOENT (cwd ${JSON.stringify(cwd)} does not exist)`, exitCode: 126 };
  const candidates = program.includes('/') ? [resolve(base, program)] : path.split(delimiter).map((dir) => join(dir === '' ? base : isAbsolute(dir) ? dir : resolve(base, dir), program));
  let denied = false;
  for (const file of candidates) {
    try {
      if (!statSync(file).isFile()) {
        denied = true;
        continue;
      }
      accessSync(file, constants.X_OK);
      return undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EACCES') denied = true;
    }
  }
  return denied ? { error: `spawn ${program} EACCES`, exitCode: 126 } : { error: `spawn ${program} ENOENT`, exitCode: 127 };
}

/** The setpriv-less fallback's join: best effort, since the task runs already (its process group still reaches it). */
export function lateJoin(procsFiles: readonly string[] | undefined, pid: number): void {
  for (const file of procsFiles ?? []) {
    try {
      writeFileSync(file, String(pid));
    } catch {
      // it exited already, or the cgroup refuses it
    }
  }
}
