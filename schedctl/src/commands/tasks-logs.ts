import * as grpc from '@grpc/grpc-js';
import type { Command } from 'commander';
import type { TaskLogsResponse } from '../../../proto/gen/sched/v1/management_pb.js';
import type { Ctx } from './context.js';
import { wholeNumber } from './tasks-run.js';

/** --tail: a number of lines, 0 or more. */
export const parseTail = (value: string): number => wholeNumber(value, 0, 2 ** 32 - 1, 'a whole number of lines, 0 or more', false);

interface LogsOptions {
  follow?: boolean;
  tail?: number;
  stderr?: boolean;
}

export function registerTasksLogs(tasks: Command, ctx: Ctx): void {
  tasks
    .command('logs')
    .description("prints a task's output, read from its worker through the management node")
    .argument('<id>', 'task id')
    .option('-f, --follow', 'keep printing new output until the task ends')
    .option('--tail <n>', 'only the last N lines', parseTail)
    .option('--stderr', 'standard error instead of standard output')
    .addHelpText(
      'after',
      `
Logs stay on the worker that ran the task (its data_dir, capped by log_max_size and removed
after log_retention); the management node relays them, so the worker may be behind NAT.
It must be connected. The latest attempt's log is shown.

Examples:
  schedctl tasks logs 0190b6b2-... 
  schedctl tasks logs -f --tail 20 0190b6b2-...
  schedctl tasks logs --stderr 0190b6b2-... > err.txt`,
    )
    .action(async (id: string, opts: LogsOptions) => {
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
    });
}
