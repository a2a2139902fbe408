// Waiting for tasks to finish over WatchTasks, for tasks wait, tasks run --wait and tasks cancel.
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { describeRpcError } from '../../common/errors.js';
import type { WatchTasksResponse } from '../../proto/gen/schedapi/v1/management_pb.js';
import { TaskState, type Task } from '../../proto/gen/schedapi/v1/types_pb.js';
import type { GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import type { ManagerClient } from '../../common/manager-client.js';
import type { ManagementClient } from './client.js';
import type { Ctx } from './commands/context.js';
import { EXIT_TASK_DEAD } from './flags.js';
import { readStream } from './read-stream.js';

/** Most ids one WatchTasks call may name (the management node refuses more); larger sets use several streams. */
export const WATCH_BATCH = 1000;

/** How long a wait goes on re-attaching while no manager answers (a failover or a restart takes seconds). */
export const WAIT_PATIENCE_MS = 60_000;

export function isFinished(task: Task): boolean {
  return task.state === TaskState.DONE || task.state === TaskState.DEAD;
}

/** A process exit status is 8 bits: anything outside would wrap (256 → 0, a failure reported as success). */
export function processExitCode(exitCode: number): number {
  return Number.isInteger(exitCode) && exitCode >= 0 && exitCode <= 255 ? exitCode : 1;
}

const startFailed = (t: Task): boolean => t.state === TaskState.DEAD && t.deadReason === 'start-failed';

/**
 * The exit code for ended tasks: 125 if any is dead (it never ran), else the
 * exit code of the first that failed in the order given, else 0. A program
 * that could not start counts as a shell would say it (127 not found, 126 not
 * executable); a signal is 128 + its number, as the worker reports it.
 */
export function groupExitCode(tasks: readonly Task[]): number {
  if (tasks.some((t) => t.state === TaskState.DEAD && !startFailed(t))) return EXIT_TASK_DEAD;
  for (const t of tasks) {
    const code = startFailed(t) ? processExitCode(t.exitCode) || 127 : processExitCode(t.exitCode);
    if (code !== 0) return code;
  }
  return 0;
}

/** How an ended task ended, for a line on stderr; undefined when it simply succeeded. */
export function failureOf(t: Task): string | undefined {
  if (t.state === TaskState.DEAD) return `is dead: ${t.deadReason || 'no reason given'}${t.error ? ` (${t.error})` : ''}`;
  if (t.oomKilled) return t.error || "ran out of memory: killed by the kernel's OOM killer at its memory limit";
  if (t.error) return t.error;
  if (t.timedOut) return `timed out and was killed by ${t.signal || 'a signal'}`;
  if (t.signal) return `was killed by ${t.signal}`;
  if (t.exitCode !== 0) return `exited with ${t.exitCode}`;
  return undefined;
}

/**
 * One WatchTasks stream: resolves once every named task is done or dead (or
 * the signal aborts it), rejects when the stream fails first.
 */
function watchOnce(client: ManagementClient, ids: readonly string[], onTask: (task: Task) => void, signal: AbortSignal): Promise<void> {
  const open = new Set(ids);
  return readStream(
    client.watchTasks({ ids: [...ids] }),
    signal,
    (res: WatchTasksResponse) => {
      const task = res.task;
      if (!task || !open.has(task.id)) return false;
      onTask(task);
      if (isFinished(task)) open.delete(task.id);
      return open.size === 0;
    },
    'watch stream ended before the tasks finished',
  );
}

/** How often a wait asks why tasks still pending wait (WatchTasks says only when they change state). */
const PENDING_POLL_MS = 2000;
/** Most pending tasks whose reason a wait reports (a bulk wait would otherwise ask for thousands). */
const PENDING_REPORTED = 10;
/** What the manager says of a task no connected worker could ever run (scheduler/explain.ts). */
const NEVER_FITS = /no connected worker could ever fit it|every worker that could run it refused it/;

/** The manager says a waited-for task can never be placed: a wait ends with it rather than hang. */
export class UnplaceableError extends Error {
  constructor(readonly task: Task) {
    super(`task ${task.id} cannot run: ${task.pendingReason}`);
  }
}

/** The wait was interrupted (Ctrl-C): `left` are the ids that had not ended, in the order given. */
export class WaitInterrupted extends Error {
  constructor(readonly left: string[]) {
    super(`interrupted while waiting for ${left.length} task(s)`);
  }
}

export interface WaitOptions {
  /** Give up after this long with no manager answering (default WAIT_PATIENCE_MS). */
  patienceMs?: number;
  /** Every state the watch reports (the current one first, then each change). */
  onTask?: (task: Task) => void;
  /** A line for the operator (a pending task's reason); default: stderr. */
  say?: (line: string) => void;
  /** Aborting it ends the wait with WaitInterrupted. */
  signal?: AbortSignal;
}

/**
 * While the tasks run, asks every PENDING_POLL_MS why the first PENDING_REPORTED of
 * those still pending (as far as the watch said) wait, says each new reason (as nomad prints
 * placement failures), and calls unplaceable with a task no known worker could ever fit.
 */
function reportPending(ctx: Ctx, ids: readonly string[], pending: (id: string) => boolean, say: (line: string) => void, unplaceable: (t: Task) => void): () => void {
  const said = new Map<string, string>();
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    const asked = ids.filter(pending).slice(0, PENDING_REPORTED);
    void Promise.all(
      asked.map(async (id) => {
        const task = (await ctx.client().getTask({ id }, ctx.unary()).catch(() => undefined))?.task;
        if (!task || task.state !== TaskState.PENDING || !task.pendingReason || said.get(id) === task.pendingReason) return;
        said.set(id, task.pendingReason);
        say(`schedctl: task ${id} pending: ${task.pendingReason}\n`);
        if (NEVER_FITS.test(task.pendingReason)) unplaceable(task);
      }),
    ).finally(() => (busy = false));
  }, PENDING_POLL_MS);
  return () => clearInterval(timer);
}

/**
 * Waits until every task is done or dead and returns them in the order of
 * `ids` (full ids: the watch answers with those). While some are pending it says why (reportPending) and rejects with
 * UnplaceableError when one can never be placed, with WaitInterrupted when opts.signal aborts. The tasks are durable
 * on the manager, so streams lost to a manager restart or leader failover are simply reopened for the tasks still running
 * (the server resends their current state); give up after `patienceMs` with no answer.
 */
export async function waitForTasks(ctx: Ctx, ids: readonly string[], opts: WaitOptions = {}): Promise<Task[]> {
  const patienceMs = opts.patienceMs ?? WAIT_PATIENCE_MS;
  const finals = new Map<string, Task>();
  const unique = [...new Set(ids)];
  let never: Task | undefined;
  let giveUp: (() => void) | undefined;
  /** Each task's state as the watch last said (a task placed needs no more asking why it waits). */
  const states = new Map<string, TaskState>();
  const pending = (id: string): boolean => (states.get(id) ?? TaskState.PENDING) === TaskState.PENDING;
  const say = opts.say ?? ((line: string) => ctx.io.err(line));
  const stopReporting = reportPending(ctx, unique, pending, say, (t) => {
    never = t;
    giveUp?.();
  });
  const interrupted = (): WaitInterrupted => new WaitInterrupted(unique.filter((id) => !finals.has(id)));
  const onAbort = (): void => giveUp?.();
  opts.signal?.addEventListener('abort', onAbort);
  try {
    return await waitLoop();
  } finally {
    stopReporting();
    opts.signal?.removeEventListener('abort', onAbort);
  }

  async function waitLoop(): Promise<Task[]> {
    let failingSince: number | undefined;
    let delay = 200;
    const onTask = (task: Task): void => {
      failingSince = undefined;
      delay = 200;
      states.set(task.id, task.state);
      if (isFinished(task)) finals.set(task.id, task);
      opts.onTask?.(task);
    };
    const check = (): void => {
      if (opts.signal?.aborted) throw interrupted();
      if (never) throw new UnplaceableError(never);
    };
    for (;;) {
      const left = unique.filter((id) => !finals.has(id));
      if (left.length === 0) return ids.map((id) => finals.get(id)!);
      const batches: string[][] = [];
      for (let i = 0; i < left.length; i += WATCH_BATCH) batches.push(left.slice(i, i + WATCH_BATCH));
      // One failed stream ends the round; the others are cancelled and all reopened together.
      const round = new AbortController();
      giveUp = () => round.abort();
      try {
        check();
        await Promise.all(batches.map((batch) => watchOnce(ctx.client(), batch, onTask, round.signal)));
        check();
      } catch (err) {
        if (err instanceof UnplaceableError || err instanceof WaitInterrupted) throw err;
        // Lost with its manager, or it was not the leader: reopened on the leader (named, or found among the managers).
        const client = ctx.client() as ManagementClient & Partial<Pick<ManagerClient<GenServiceMethods>, 'streamFailed'>>;
        const again = client.streamFailed ? client.streamFailed(err) : (err as { code?: unknown }).code === grpc.status.UNAVAILABLE;
        if (!again) throw err;
        failingSince ??= Date.now();
        if (Date.now() - failingSince > patienceMs) throw err;
        const what = left.length === 1 ? `task ${left[0]}` : `${left.length} tasks`;
        ctx.debug(`watching ${what}: ${describeRpcError(err, ctx.settings().manager)}; retrying in ${delay}ms`);
        await sleep(delay, undefined, opts.signal ? { signal: opts.signal } : {}).catch(() => undefined);
        delay = Math.min(delay * 2, 2000);
      } finally {
        round.abort();
      }
    }
  }
}

/** waitForTasks for one task. */
export async function waitForTask(ctx: Ctx, id: string, opts: WaitOptions = {}): Promise<Task> {
  const [task] = await waitForTasks(ctx, [id], opts);
  return task!;
}
