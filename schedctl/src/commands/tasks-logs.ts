import * as grpc from '@grpc/grpc-js';
import type { TaskLogsResponse } from '../../../proto/gen/sched/v1/management_pb.js';
import type { Ctx } from './context.js';

export { parseTail } from '../flags.js';

interface LogsOptions {
  follow?: boolean;
  tail?: number;
  stderr?: boolean;
}

/** How long a followed log waits for a leader again after losing its manager (a failover takes seconds). */
const FOLLOW_PATIENCE_MS = 60_000;

/**
 * `schedctl tasks logs` (registered in registry.ts). With -f, a stream lost
 * with its manager (a failover) is opened again on the leader and picks up
 * where it was: the log is read again from its start and what was already
 * printed is skipped (after --tail N, from the end as it is then).
 */
export async function tasksLogs(ctx: Ctx, id: string, opts: LogsOptions): Promise<void> {
  const decoder = new TextDecoder();
  const write = ctx.io.write?.bind(ctx.io) ?? ((data: Uint8Array) => ctx.io.out(decoder.decode(data, { stream: true })));
  /** Bytes printed, counted from the log's start; undefined after --tail (where it starts is unknown). */
  let printed: number | undefined = opts.tail === undefined ? 0 : undefined;
  let skip = 0;
  let tail = opts.tail;
  let failingSince: number | undefined;
  for (;;) {
    // A followed log has no deadline; a plain read gets the configured one.
    const call = ctx.client().taskLogs(
      { id, stderr: opts.stderr ?? false, follow: opts.follow ?? false, ...(tail !== undefined ? { tailLines: tail } : {}) },
      opts.follow ? {} : ctx.unary(),
    );
    const onSignal = (): void => call.cancel();
    process.once('SIGINT', onSignal);
    try {
      await new Promise<void>((resolve, reject) => {
        call.on('data', (res: TaskLogsResponse) => {
          failingSince = undefined;
          let data = res.data;
          if (skip > 0) {
            const n = Math.min(skip, data.length);
            skip -= n;
            data = data.subarray(n);
          }
          if (printed !== undefined) printed += data.length;
          if (data.length > 0) write(data);
        });
        call.on('end', resolve);
        call.on('error', (err: grpc.ServiceError) => (err.code === grpc.status.CANCELLED ? resolve() : reject(err)));
      });
      return;
    } catch (err) {
      const client = ctx.client() as { streamFailed?: (e: unknown) => boolean };
      failingSince ??= Date.now();
      if (!opts.follow || !client.streamFailed?.(err) || Date.now() - failingSince > FOLLOW_PATIENCE_MS) throw err;
      ctx.debug(`following the log of ${id}: ${(err as grpc.ServiceError).details ?? String(err)}; opening it again`);
      // Read again from the start and skip what was printed; after --tail, only what comes next.
      if (printed !== undefined) {
        tail = undefined;
        skip = printed;
      } else tail = 0;
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      process.off('SIGINT', onSignal);
    }
  }
}
