// Waiting for tasks to finish over WatchTasks, for tasks run --wait and tasks cancel.
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { describeRpcError } from '../../common/errors.js';
import type { WatchTasksResponse } from '../../proto/gen/sched/v1/management_pb.js';
import { TaskState, type Task } from '../../proto/gen/sched/v1/types_pb.js';
import type { GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import type { ManagerClient } from '../../common/manager-client.js';
import type { ManagementClient } from './client.js';
import type { Ctx } from './commands/context.js';

/** Most ids one WatchTasks call may name (the management node refuses more); larger sets use several streams. */
export const WATCH_BATCH = 1000;

export function isFinished(task: Task): boolean {
  return task.state === TaskState.DONE || task.state === TaskState.DEAD;
}

/**
 * One WatchTasks stream: resolves once every named task is done or dead (or
 * the signal aborts it), rejects when the stream fails first.
 */
function watchOnce(client: ManagementClient, ids: readonly string[], onTask: (task: Task) => void, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const open = new Set(ids);
    const call = client.watchTasks({ ids: [...ids] });
    let settled = false;
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      fn();
      call.cancel(); // the CANCELLED error this causes is ignored below
    };
    const onAbort = (): void => settle(resolve);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    call.on('data', (res: WatchTasksResponse) => {
      const task = res.task;
      if (!task || !open.has(task.id)) return;
      onTask(task);
      if (!isFinished(task)) return;
      open.delete(task.id);
      if (open.size === 0) settle(resolve);
    });
    call.on('error', (err: Error) => settle(() => reject(err)));
    call.on('end', () =>
      settle(() => reject(Object.assign(new Error('watch stream ended before the tasks finished'), { code: grpc.status.UNAVAILABLE }))),
    );
  });
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

/**
 * While the tasks run, asks every PENDING_POLL_MS why the first PENDING_REPORTED of
 * those still pending (as far as the watch said) wait, prints each new reason on stderr (as nomad prints placement
 * failures), and calls unplaceable with a task no known worker could ever fit.
 */
function reportPending(ctx: Ctx, ids: readonly string[], pending: (id: string) => boolean, unplaceable: (t: Task) => void): () => void {
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
        ctx.io.err(`schedctl: task ${id} pending: ${task.pendingReason}\n`);
        if (NEVER_FITS.test(task.pendingReason)) unplaceable(task);
      }),
    ).finally(() => (busy = false));
  }, PENDING_POLL_MS);
  return () => clearInterval(timer);
}

/**
 * Waits until every task is done or dead and returns them in the order of
 * `ids`. While some are pending it says why (reportPending) and rejects with
 * UnplaceableError when one can never be placed. The tasks are durable on the manager, so streams lost to a manager
 * restart or leader failover are simply reopened for the tasks still running
 * (the server resends their current state); give up after `patienceMs` with
 * no answer.
 */
export async function waitForTasks(ctx: Ctx, ids: readonly string[], patienceMs: number): Promise<Task[]> {
  const finals = new Map<string, Task>();
  const unique = [...new Set(ids)];
  let never: Task | undefined;
  let giveUp: (() => void) | undefined;
  /** Each task's state as the watch last said (a task placed needs no more asking why it waits). */
  const states = new Map<string, TaskState>();
  const pending = (id: string): boolean => (states.get(id) ?? TaskState.PENDING) === TaskState.PENDING;
  const stopReporting = reportPending(ctx, unique, pending, (t) => {
    never = t;
    giveUp?.();
  });
  try {
    return await waitLoop();
  } finally {
    stopReporting();
  }

  async function waitLoop(): Promise<Task[]> {
    let failingSince: number | undefined;
    let delay = 200;
    const onTask = (task: Task): void => {
      failingSince = undefined;
      delay = 200;
      states.set(task.id, task.state);
      if (isFinished(task)) finals.set(task.id, task);
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
        if (never) throw new UnplaceableError(never);
        await Promise.all(batches.map((batch) => watchOnce(ctx.client(), batch, onTask, round.signal)));
        if (never) throw new UnplaceableError(never);
      } catch (err) {
        if (err instanceof UnplaceableError) throw err;
        // Lost with its manager, or it was not the leader: reopened on the leader (named, or found among the managers).
        const client = ctx.client() as ManagementClient & Partial<Pick<ManagerClient<GenServiceMethods>, 'streamFailed'>>;
        const again = client.streamFailed ? client.streamFailed(err) : (err as { code?: unknown }).code === grpc.status.UNAVAILABLE;
        if (!again) throw err;
        failingSince ??= Date.now();
        if (Date.now() - failingSince > patienceMs) throw err;
        const what = left.length === 1 ? `task ${left[0]}` : `${left.length} tasks`;
        ctx.debug(`watching ${what}: ${describeRpcError(err, ctx.settings().manager)}; retrying in ${delay}ms`);
        await sleep(delay);
        delay = Math.min(delay * 2, 2000);
      } finally {
        round.abort();
      }
    }
  }
}

/** waitForTasks for one task. */
export async function waitForTask(ctx: Ctx, id: string, patienceMs: number): Promise<Task> {
  const [task] = await waitForTasks(ctx, [id], patienceMs);
  return task!;
}
