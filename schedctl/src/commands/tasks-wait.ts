// schedctl tasks wait, and the wait that tasks run --wait (one task, a --count
// group, a batch file) shares with it: progress on stderr, the exit code, and
// Ctrl-C, which leaves the tasks running and says how to wait again.
import { create } from '@bufbuild/protobuf';
import type { Command } from 'commander';
import { ListTasksResponseSchema } from '../../../proto/gen/schedapi/v1/management_pb.js';
import { TaskState, type Task } from '../../../proto/gen/schedapi/v1/types_pb.js';
import { EXIT_TASK_DEAD } from '../flags.js';
import { view } from '../printers/view.js';
import { startProgress } from '../progress.js';
import { retryUnary } from '../retry.js';
import { failureOf, groupExitCode, UnplaceableError, WAIT_PATIENCE_MS, WaitInterrupted, waitForTasks } from '../wait.js';
import type { Ctx } from './context.js';

/** Exit code after Ctrl-C, as a shell reports a process killed by SIGINT. */
export const EXIT_INTERRUPTED = 130;
/** Tasks a Ctrl-C names one by one (the rest are counted). */
const NAMED_LEFT = 10;
/** GetTask calls in flight while tasks wait resolves the ids it was given. */
const RESOLVE_PARALLEL = 16;
/** ListTasks page size for --group (the manager's largest page). */
const GROUP_PAGE = 1000;

export interface WaitTarget {
  /** Full task ids, in the order their exit codes count. */
  ids: string[];
  /** Groups waited for as a whole: a Ctrl-C names them (--group G) rather than their ids. */
  groups?: ReadonlyMap<string, string>;
}

/** `schedctl tasks wait ...` for what is left: whole groups by --group, the rest by id. */
export function resumeCommand(left: readonly string[], groups: ReadonlyMap<string, string> = new Map()): string {
  const named = new Set<string>();
  const ids: string[] = [];
  for (const id of left) {
    const g = groups.get(id);
    if (g) named.add(g);
    else ids.push(id);
  }
  return ['schedctl tasks wait', ...ids, ...[...named].map((g) => `--group ${g}`)].join(' ');
}

const STATE_WORDS: Partial<Record<TaskState, string>> = { [TaskState.PENDING]: 'pending', [TaskState.SCHEDULED]: 'running' };

/**
 * Waits for the tasks and sets the exit code (wait.ts groupExitCode); resolves
 * to the ended tasks, or undefined when the wait ended otherwise (Ctrl-C: 130;
 * a task no worker could ever run: 125), having said why on stderr. On a
 * terminal, more than one task gets a bar; without one, each task that ends
 * gets a line. One task alone says only how it failed.
 */
export async function waitAndReport(ctx: Ctx, target: WaitTarget): Promise<Task[] | undefined> {
  const { ids } = target;
  const single = new Set(ids).size === 1;
  const bar = single ? undefined : startProgress(ctx.io, new Set(ids).size, 'waiting');
  const say = (line: string): void => (bar ? bar.say(line) : ctx.io.err(line));
  const states = new Map<string, Task>();
  let ended = 0;
  const counts = { succeeded: 0, failed: 0 };
  const redraw = (): void => {
    if (!bar?.drawn) return;
    let running = 0;
    let pending = 0;
    for (const t of states.values()) {
      if (t.state === TaskState.SCHEDULED) running++;
      else if (t.state === TaskState.PENDING) pending++;
    }
    pending += new Set(ids).size - states.size;
    bar.update(ended, `${counts.succeeded} done, ${counts.failed} failed, ${running} running, ${pending} pending`);
  };
  const onTask = (t: Task): void => {
    const before = states.get(t.id);
    states.set(t.id, t);
    if ((before?.state === TaskState.DONE || before?.state === TaskState.DEAD) || (t.state !== TaskState.DONE && t.state !== TaskState.DEAD)) {
      redraw();
      return;
    }
    ended++;
    const failure = failureOf(t);
    if (failure) counts.failed++;
    else counts.succeeded++;
    redraw();
    // One task: its exit code says a plain failure; the rest is worth a line.
    if (single && t.state === TaskState.DONE && !t.error && !t.signal) return;
    if (failure) say(`schedctl: task ${t.id} ${failure}\n`);
    else if (!bar?.drawn) say(`schedctl: task ${t.id} succeeded\n`);
  };
  const interrupt = new AbortController();
  const onSigint = (): void => interrupt.abort();
  process.on('SIGINT', onSigint);
  try {
    const finals = await waitForTasks(ctx, ids, { onTask, say, signal: interrupt.signal });
    bar?.stop();
    ctx.exit(groupExitCode(finals));
    return finals;
  } catch (err) {
    bar?.stop();
    if (err instanceof WaitInterrupted) {
      const named = err.left.slice(0, NAMED_LEFT).map((id) => {
        const t = states.get(id);
        const reason = t?.state === TaskState.PENDING && t.pendingReason ? `: ${t.pendingReason}` : '';
        return `  ${id} ${(t && STATE_WORDS[t.state]) ?? 'pending'}${reason}\n`;
      });
      const more = err.left.length > NAMED_LEFT ? `  and ${err.left.length - NAMED_LEFT} more\n` : '';
      ctx.io.err(
        `schedctl: interrupted; nothing was cancelled. Still waiting for ${err.left.length === 1 ? '1 task' : `${err.left.length} tasks`}:\n` +
          `${named.join('')}${more}schedctl: wait again with: ${resumeCommand(err.left, target.groups)}\n`,
      );
      ctx.exit(EXIT_INTERRUPTED);
      return undefined;
    }
    if (!(err instanceof UnplaceableError)) throw err;
    // It would wait forever: no worker the manager knows could ever run it. It stays pending (a bigger
    // worker may join); the exit code says it will not run as things are.
    ctx.io.err(`schedctl: ${err.message}; it stays pending (cancel it with: schedctl tasks cancel ${err.task.id})\n`);
    ctx.exit(EXIT_TASK_DEAD);
    return undefined;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** Every task of a group, oldest first (the order of its members). */
async function groupTasks(ctx: Ctx, groupId: string): Promise<Task[]> {
  const tasks: Task[] = [];
  let pageToken = '';
  do {
    const page = await patiently(ctx, (deadlineMs) => ctx.client().listTasks({ groupId, oldestFirst: true, limit: GROUP_PAGE, pageToken }, { deadlineMs }));
    tasks.push(...page.tasks);
    pageToken = page.nextPageToken;
  } while (pageToken !== '');
  if (tasks.length === 0) throw new Error(`no tasks in group ${groupId}`);
  return tasks;
}

/**
 * A read the wait starts with, retried as the wait itself is while no manager answers (one
 * restarting, or an election): a wait begun in that moment waits rather than fails.
 */
function patiently<T>(ctx: Ctx, call: (deadlineMs: number) => Promise<T>): Promise<T> {
  return retryUnary(call, {
    totalMs: WAIT_PATIENCE_MS,
    attemptMs: ctx.unary().deadlineMs ?? 10_000,
    onRetry: (err, attempt, delayMs) => ctx.debug(`attempt ${attempt}: ${(err as Error).message}; retrying in ${delayMs}ms`),
  });
}

/** The tasks the ids name (full ids, prefixes or short ids, as the manager resolves them); an unknown one fails the command. */
async function resolveIds(ctx: Ctx, refs: readonly string[]): Promise<Task[]> {
  const out: Task[] = new Array<Task>(refs.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < refs.length; i = next++) {
      const { task } = await patiently(ctx, (deadlineMs) => ctx.client().getTask({ id: refs[i]! }, { deadlineMs }));
      if (!task) throw new Error(`task ${refs[i]}: the management node returned none`);
      out[i] = task;
    }
  };
  await Promise.all(Array.from({ length: Math.min(RESOLVE_PARALLEL, refs.length) }, worker));
  return out;
}

/** `schedctl tasks wait ID... | --group G` (registered in register-tasks.ts). */
export async function tasksWait(ctx: Ctx, refs: string[], opts: { group?: string[] }, cmd: Command): Promise<void> {
  const groupIds = opts.group ?? [];
  if (refs.length === 0 && groupIds.length === 0) cmd.error('error: name the tasks to wait for: ID... or --group G', { code: 'commander.missingArgument' });
  const named = await resolveIds(ctx, refs);
  const groups = new Map<string, string>();
  const members: Task[] = [];
  for (const g of groupIds) {
    for (const t of await groupTasks(ctx, g)) {
      groups.set(t.id, t.groupId || g);
      members.push(t);
    }
  }
  const ids = [...new Set([...named, ...members].map((t) => t.id))];
  const finals = await waitAndReport(ctx, { ids, groups });
  // A table's output is the exit code and the lines on stderr; json, yaml and name print the ended tasks.
  const { output } = ctx.settings();
  if (finals && output !== 'table' && output !== 'wide') {
    ctx.print(view(ListTasksResponseSchema, create(ListTasksResponseSchema, { tasks: finals, total: finals.length }), () => ({ kind: 'rows', head: [], rows: [] })));
  }
}
