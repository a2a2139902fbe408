// schedctl events: every stored change of a task or worker, one line each, as
// WatchEvents streams them. The stream is resumable by store revision, so a
// manager restart or a failover costs nothing: the stream is opened again on
// the leader after the last revision printed. When the manager no longer
// holds that far back (OUT_OF_RANGE), the gap is said on stderr and the
// stream goes on from now.
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { describeRpcError } from '../../../common/errors.js';
import { WatchEventsResponseSchema, type WatchEventsRequest, type WatchEventsResponse } from '../../../proto/gen/schedapi/v1/management_pb.js';
import { TaskState, type Task, type Worker } from '../../../proto/gen/schedapi/v1/types_pb.js';
import { exitSummary, shellQuote, taskStateName, truncate, workerStateName } from '../format.js';
import { jsonValue } from '../printers/json.js';
import { view } from '../printers/view.js';
import type { ManagementClient } from '../client.js';
import { readStream } from '../read-stream.js';
import type { Ctx } from './context.js';
import { EXIT_INTERRUPTED } from './tasks-wait.js';

/** How long the stream is opened again while no manager answers (a failover or a restart takes seconds). */
export const EVENTS_PATIENCE_MS = 60_000;
/** A stream that lived this long had reached a manager: its loss starts a new patience. */
const HEALTHY_STREAM_MS = 5000;
/** Longest detail on a line (a pending reason can be long). */
const DETAIL_WIDTH = 100;

export type EventsRequest = Pick<WatchEventsRequest, 'afterRevision' | 'tasks' | 'workers' | 'groupId'>;

/** A task's short id: its last 8 characters (the random part of its UUIDv7), as the manager accepts it. */
export const shortTaskId = (id: string): string => (id.length > 8 ? id.slice(-8) : id);

/** A worker as a line names it: its name, else the start of its id. */
export const workerLabel = (w: Pick<Worker, 'id' | 'name'>): string => w.name || (w.id.length > 8 ? w.id.slice(0, 8) : w.id);

function taskDetail(t: Task): string {
  switch (t.state) {
    case TaskState.PENDING:
      return t.pendingReason || shellQuote(t.spec?.argv ?? []);
    case TaskState.SCHEDULED:
      return `on ${t.workerId}`;
    case TaskState.DONE:
      return `exit ${exitSummary(t)}${t.timedOut ? ' (timed out)' : ''}${t.error ? `: ${t.error}` : ''}`;
    case TaskState.DEAD:
      return `${t.deadReason || 'dead'}${t.error ? `: ${t.error}` : ''}`;
    default:
      return '';
  }
}

/** One event as a line: time, revision, kind, short id, state, detail. */
export function eventLine(ev: WatchEventsResponse): string {
  const time = new Date(Number(ev.unixMs)).toISOString();
  const o = ev.object;
  const [kind, id, state, detail] =
    o.case === 'task'
      ? ['task', shortTaskId(o.value.id), taskStateName(o.value.state), taskDetail(o.value)]
      : o.case === 'worker'
        ? ['worker', workerLabel(o.value), workerStateName(o.value), `${o.value.address} ${o.value.runningTasks} tasks`]
        : ['?', '-', '-', ''];
  return `${time}  ${String(ev.revision).padStart(8)}  ${kind.padEnd(6)}  ${id.padEnd(8)}  ${state.padEnd(12)}  ${truncate(detail, DETAIL_WIDTH)}`.trimEnd();
}

/** One WatchEvents stream until it fails or ends (which rejects too: the caller reopens it), or the signal aborts it (resolves). */
function streamOnce(client: ManagementClient, req: EventsRequest, onEvent: (ev: WatchEventsResponse) => void, signal: AbortSignal): Promise<void> {
  return readStream(
    client.watchEvents(req),
    signal,
    (ev: WatchEventsResponse) => {
      onEvent(ev);
      return false;
    },
    'event stream ended',
  );
}

export interface FollowOptions {
  /** Ends the following (resolves). */
  signal: AbortSignal;
  /** The manager no longer holds events after `after`: returns the revision to go on from (0 = from now). */
  missed(after: bigint, err: grpc.ServiceError): Promise<bigint>;
}

/**
 * Follows WatchEvents from `req.afterRevision` until the signal aborts, reopening the stream
 * on the leader after the last revision seen when it is lost; throws when no manager answers
 * for EVENTS_PATIENCE_MS, or on an error a reopening cannot help.
 */
export async function followEvents(ctx: Ctx, req: EventsRequest, onEvent: (ev: WatchEventsResponse) => void, opts: FollowOptions): Promise<void> {
  let after = req.afterRevision;
  let failingSince: number | undefined;
  let delay = 200;
  while (!opts.signal.aborted) {
    const openedAt = Date.now();
    try {
      await streamOnce(ctx.client(), { ...req, afterRevision: after }, (ev) => {
        if (ev.revision > after) after = ev.revision;
        onEvent(ev);
      }, opts.signal);
    } catch (err) {
      const e = err as grpc.ServiceError;
      if (e.code === grpc.status.OUT_OF_RANGE && after !== 0n) {
        after = await opts.missed(after, e);
        continue;
      }
      const client = ctx.client() as ManagementClient & { streamFailed?: (e: unknown) => boolean };
      const again = client.streamFailed ? client.streamFailed(err) : e.code === grpc.status.UNAVAILABLE;
      if (!again) throw err;
      if (Date.now() - openedAt > HEALTHY_STREAM_MS) {
        failingSince = undefined;
        delay = 200;
      }
      failingSince ??= Date.now();
      if (Date.now() - failingSince > EVENTS_PATIENCE_MS) throw err;
      ctx.debug(`events: ${describeRpcError(err, ctx.settings().manager)}; resuming after revision ${after} in ${delay}ms`);
      await sleep(delay, undefined, { signal: opts.signal }).catch(() => undefined);
      delay = Math.min(delay * 2, 2000);
    }
  }
}

/** Runs `body` with an AbortSignal that Ctrl-C aborts; sets exit code 130 if it did. */
export async function untilInterrupted(ctx: Ctx, body: (signal: AbortSignal) => Promise<void>): Promise<void> {
  const interrupt = new AbortController();
  const onSigint = (): void => interrupt.abort();
  process.on('SIGINT', onSigint);
  try {
    await body(interrupt.signal);
  } finally {
    process.off('SIGINT', onSigint);
  }
  if (interrupt.signal.aborted) ctx.exit(EXIT_INTERRUPTED);
}

/** How an event goes to stdout: a line (table), one JSON object per line (json), a YAML document each (yaml). */
export function eventPrinter(ctx: Ctx): (ev: WatchEventsResponse) => void {
  switch (ctx.settings().output) {
    case 'json':
      return (ev) => ctx.io.out(`${JSON.stringify(jsonValue(view(WatchEventsResponseSchema, ev, () => ({ kind: 'rows', head: [], rows: [] }))))}\n`);
    case 'yaml':
      return (ev) => {
        ctx.io.out('---\n');
        ctx.print(view(WatchEventsResponseSchema, ev, () => ({ kind: 'rows', head: [], rows: [] })));
      };
    default:
      return (ev) => ctx.io.out(`${eventLine(ev)}\n`);
  }
}

export interface EventsOptions {
  afterRevision?: bigint;
  tasks?: boolean;
  workers?: boolean;
  group?: string;
}

/** `schedctl events` (registered in register-other.ts). */
export async function events(ctx: Ctx, opts: EventsOptions): Promise<void> {
  const print = eventPrinter(ctx);
  const req = { afterRevision: opts.afterRevision ?? 0n, tasks: opts.tasks === true, workers: opts.workers === true, groupId: opts.group ?? '' };
  await untilInterrupted(ctx, (signal) =>
    followEvents(ctx, req, print, {
      signal,
      missed: async (after, err) => {
        ctx.io.err(`schedctl: the management node no longer holds the events after revision ${after} (${err.details}); some were missed, going on from now\n`);
        return 0n;
      },
    }),
  );
}
