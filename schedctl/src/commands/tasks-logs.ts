import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { describeRpcError } from '../../../common/errors.js';
import type { TaskLogsResponse } from '../../../proto/gen/schedapi/v1/management_pb.js';
import { TaskState, type Task } from '../../../proto/gen/schedapi/v1/types_pb.js';
import { isFinished, WaitInterrupted, waitForTasks } from '../wait.js';
import type { Ctx } from './context.js';

export { parseTail } from '../flags.js';

interface LogsOptions {
  follow?: boolean;
  tail?: number;
  stderr?: boolean;
}

/** How long a followed log goes on trying while no manager answers (a failover takes seconds). */
const FOLLOW_PATIENCE_MS = 60_000;
/** What the manager says when the task's worker is away (management-node/src/log-relay.ts): the manager answered. */
const WORKER_AWAY = /^the task's worker (\S+) (is disconnected|disconnected while)/;

/** Why a followed log stopped; each is said once on stderr while it lasts. */
type Gap = 'pending' | 'worker' | 'manager';

/**
 * `schedctl tasks logs` (registered in register-tasks.ts). With -f it follows
 * the task until it ends: a pending task is waited for (it has no log yet); a
 * stream lost with the task's worker (a blip) or with the manager (a restart,
 * a failover: the stream is opened again on the leader) is opened again with
 * backoff and picks up where it was: the log is read again from its start and
 * what was already printed is skipped (after --tail N, only what comes next).
 * A new attempt (the task placed again) has a log of its own, printed whole.
 */
export async function tasksLogs(ctx: Ctx, ref: string, opts: LogsOptions): Promise<void> {
  const decoder = new TextDecoder();
  const write = ctx.io.write?.bind(ctx.io) ?? ((data: Uint8Array) => ctx.io.out(decoder.decode(data, { stream: true })));
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.on('SIGINT', onSignal);
  try {
    if (!opts.follow) {
      await readOnce(ctx, ref, { stderr: opts.stderr ?? false, follow: false, tail: opts.tail, skip: 0 }, write, stop.signal).catch((err: unknown) => {
        // The manager answered: its words, not those of an unreachable manager (describeRpcError reads "connect" in them).
        const e = err as grpc.ServiceError;
        throw e.code === grpc.status.UNAVAILABLE && WORKER_AWAY.test(e.details ?? '') ? new Error(e.details, { cause: err }) : err;
      });
      return;
    }
    await follow(ctx, ref, opts, write, stop.signal);
  } finally {
    process.off('SIGINT', onSignal);
  }
}

async function follow(ctx: Ctx, ref: string, opts: LogsOptions, write: (data: Uint8Array) => void, signal: AbortSignal): Promise<void> {
  /** Bytes printed of this attempt's log, counted from its start; undefined after --tail (where it starts is unknown). */
  let printed: number | undefined = opts.tail === undefined ? 0 : undefined;
  let tail = opts.tail;
  let attempt: number | undefined;
  let gap: Gap | undefined;
  let failingSince: number | undefined;
  let delay = 200;
  const say = (why: Gap, line: string): void => {
    if (gap !== why) ctx.io.err(`schedctl: ${line}\n`);
    gap = why;
  };
  while (!signal.aborted) {
    let task: Task | undefined;
    try {
      task = (await ctx.client().getTask({ id: ref }, ctx.unary())).task;
      if (!task) throw new Error(`task ${ref}: the management node returned none`);
      failingSince = undefined;
      if (task.state === TaskState.PENDING && !(await untilStarted(ctx, task, signal, (line) => say('pending', line)))) return;
      // Placed again: a new attempt writes a new log, printed from its start.
      if (attempt !== undefined && task.attempt !== attempt && task.state !== TaskState.PENDING) {
        ctx.io.err(`schedctl: task ${task.id} runs again (attempt ${task.attempt}); its new output follows\n`);
        if (printed !== undefined) printed = 0;
        tail = undefined;
      }
      attempt = task.attempt;
      const before = printed;
      await readOnce(ctx, task.id, { stderr: opts.stderr ?? false, follow: true, tail, skip: printed ?? 0 }, (data) => {
        if (gap !== undefined && gap !== 'pending') gap = undefined;
        if (printed !== undefined) printed += data.length;
        failingSince = undefined;
        delay = 200;
        write(data);
      }, signal);
      // The stream ended: the attempt ended, or it was cut short by the manager (a new attempt, a follower).
      if (signal.aborted || isFinished((await ctx.client().getTask({ id: task.id }, ctx.unary())).task ?? task)) return;
      if (printed === before) await sleep(delay, undefined, { signal }).catch(() => undefined);
      continue;
    } catch (err) {
      const e = err as grpc.ServiceError;
      const away = e.code === grpc.status.UNAVAILABLE ? WORKER_AWAY.exec(e.details ?? '') : null;
      if (away) {
        // The manager answered: only the worker is missing, for as long as the manager keeps the task on it.
        say('worker', `the task's worker ${away[1]} is disconnected; waiting`);
      } else {
        const client = ctx.client() as { streamFailed?: (e: unknown) => boolean };
        if (!client.streamFailed?.(err)) throw err;
        failingSince ??= Date.now();
        if (Date.now() - failingSince > FOLLOW_PATIENCE_MS) throw err;
        say('manager', `${describeRpcError(err, ctx.settings().manager)}; trying again`);
      }
      // Read again from the start and skip what was printed; after --tail, only what comes next.
      if (printed === undefined) tail = 0;
      ctx.debug(`following the log of ${ref}: ${e.details ?? String(err)}; opening it again in ${delay}ms`);
      await sleep(delay, undefined, { signal }).catch(() => undefined);
      delay = Math.min(delay * 2, 2000);
    }
  }
}

/** Waits until a pending task is placed (its reasons said as they change); false when Ctrl-C ended the wait. */
async function untilStarted(ctx: Ctx, task: Task, signal: AbortSignal, say: (line: string) => void): Promise<boolean> {
  say(`task ${task.id} is pending; waiting for it to start`);
  const placed = new AbortController();
  const both = AbortSignal.any([signal, placed.signal]);
  try {
    await waitForTasks(ctx, [task.id], { signal: both, onTask: (t) => t.state !== TaskState.PENDING && placed.abort() });
  } catch (err) {
    if (!(err instanceof WaitInterrupted)) throw err;
  }
  return !signal.aborted;
}

interface ReadOptions {
  stderr: boolean;
  follow: boolean;
  tail: number | undefined;
  /** Bytes at the start already printed (a reopened stream). */
  skip: number;
}

/** One TaskLogs stream to its end (or Ctrl-C); data after the skipped bytes goes to `write`. */
async function readOnce(ctx: Ctx, id: string, o: ReadOptions, write: (data: Uint8Array) => void, signal: AbortSignal): Promise<void> {
  // A followed log has no deadline; a plain read gets the configured one.
  const call = ctx.client().taskLogs(
    { id, stderr: o.stderr, follow: o.follow, ...(o.tail !== undefined ? { tailLines: o.tail } : {}) },
    o.follow ? {} : ctx.unary(),
  );
  let skip = o.skip;
  const onAbort = (): void => call.cancel();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    await new Promise<void>((resolve, reject) => {
      call.on('data', (res: TaskLogsResponse) => {
        let data = res.data;
        if (skip > 0) {
          const n = Math.min(skip, data.length);
          skip -= n;
          data = data.subarray(n);
        }
        if (data.length > 0) write(data);
      });
      call.on('end', resolve);
      call.on('error', (err: grpc.ServiceError) => (err.code === grpc.status.CANCELLED ? resolve() : reject(err)));
    });
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}
