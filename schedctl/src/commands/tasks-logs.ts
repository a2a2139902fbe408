import * as grpc from '@grpc/grpc-js';
import type { TaskLogsResponse } from '../../../proto/gen/sched/v1/management_pb.js';
import type { Ctx } from './context.js';

export { parseTail } from '../flags.js';

interface LogsOptions {
  follow?: boolean;
  tail?: number;
  stderr?: boolean;
}

/** `schedctl tasks logs` (registered in registry.ts). */
export async function tasksLogs(ctx: Ctx, id: string, opts: LogsOptions): Promise<void> {
  // A followed log has no deadline; a plain read gets the configured one.
  const call = ctx.client().taskLogs(
    { id, stderr: opts.stderr ?? false, follow: opts.follow ?? false, ...(opts.tail !== undefined ? { tailLines: opts.tail } : {}) },
    opts.follow ? {} : ctx.unary(),
  );
  const decoder = new TextDecoder();
  const write = ctx.io.write?.bind(ctx.io) ?? ((data: Uint8Array) => ctx.io.out(decoder.decode(data, { stream: true })));
  const onSignal = (): void => call.cancel();
  process.once('SIGINT', onSignal);
  try {
    await new Promise<void>((resolve, reject) => {
      call.on('data', (res: TaskLogsResponse) => write(res.data));
      call.on('end', resolve);
      call.on('error', (err: grpc.ServiceError) => (err.code === grpc.status.CANCELLED ? resolve() : reject(err)));
    });
  } finally {
    process.off('SIGINT', onSignal);
  }
}
