import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { InvalidArgumentError, type Command } from 'commander';
import { describeRpcError } from '../../../common/errors.js';
import type { WatchTasksResponse } from '../../../proto/gen/sched/v1/management_pb.js';
import { TaskSchema, TaskState, type Task } from '../../../proto/gen/sched/v1/types_pb.js';
import type { ManagementClient } from '../client.js';
import { view } from '../printers/index.js';
import type { Ctx } from './context.js';
import { taskFields } from './tasks-show.js';

/** Exit code of `tasks run --wait` when the task will never run (as docker run uses 125 for its own failures). */
export const EXIT_TASK_DEAD = 125;

/** Collects repeated --env KEY=VALUE flags; commander reports the throw as a usage error naming the flag. */
export function parseEnvPair(value: string, previous: Record<string, string> | undefined): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError('expected KEY=VALUE');
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

/** A process exit status is 8 bits: anything outside would wrap (256 → 0, a failure reported as success). */
export function processExitCode(exitCode: number): number {
  return Number.isInteger(exitCode) && exitCode >= 0 && exitCode <= 255 ? exitCode : 1;
}

function isFinished(task: Task): boolean {
  return task.state === TaskState.DONE || task.state === TaskState.DEAD;
}

/** One WatchTasks stream: resolves with the task once done or dead. */
function watchOnce(client: ManagementClient, id: string, onUpdate: () => void): Promise<Task> {
  return new Promise((resolve, reject) => {
    const call = client.watchTasks({ ids: [id] });
    let settled = false;
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      fn();
      call.cancel(); // the CANCELLED error this causes is ignored below
    };
    call.on('data', (res: WatchTasksResponse) => {
      const task = res.task;
      if (task?.id !== id) return;
      onUpdate();
      if (isFinished(task)) settle(() => resolve(task));
    });
    call.on('error', (err: Error) => settle(() => reject(err)));
    call.on('end', () =>
      settle(() => reject(Object.assign(new Error('watch stream ended before the task finished'), { code: grpc.status.UNAVAILABLE }))),
    );
  });
}

/**
 * Waits for the task to finish. The task is durable on the manager, so a
 * stream lost to a manager restart or leader failover is simply reopened (the
 * server resends the task's current state); give up after `patienceMs` with
 * no answer.
 */
export async function waitForTask(ctx: Ctx, id: string, patienceMs: number): Promise<Task> {
  let failingSince: number | undefined;
  let delay = 200;
  for (;;) {
    try {
      return await watchOnce(ctx.client(), id, () => {
        failingSince = undefined;
        delay = 200;
      });
    } catch (err) {
      if ((err as { code?: unknown }).code !== grpc.status.UNAVAILABLE) throw err;
      failingSince ??= Date.now();
      if (Date.now() - failingSince > patienceMs) throw err;
      ctx.debug(`watching task ${id}: ${describeRpcError(err, ctx.settings().manager)}; retrying in ${delay}ms`);
      await sleep(delay);
      delay = Math.min(delay * 2, 2000);
    }
  }
}

export function registerTasksRun(tasks: Command, ctx: Ctx): void {
  tasks
    .command('run')
    .description('schedules a command on a worker and prints the task id')
    .argument('<command...>', 'the program and its arguments, after --')
    .option('-e, --env <KEY=VALUE>', 'environment variable for the task (repeatable)', parseEnvPair)
    .option('--cwd <dir>', "working directory on the worker (default: the worker's own)")
    .option('--wait', "wait until the task is done or dead and exit with the task's exit code")
    .addHelpText(
      'after',
      `
Put the command after --, so its own options are not taken for schedctl's.

Exit status: 0 once the task is accepted; with --wait, the task's exit code,
${EXIT_TASK_DEAD} if the task is dead (will never run). 1 if the management node
fails or cannot be reached, 2 on a usage or config error.

Examples:
  schedctl tasks run -- /bin/echo hello
  id=$(schedctl tasks run -e LANG=C --cwd /srv -- make test)
  schedctl tasks run --wait -- sh -c 'exit 3'; echo $?   # 3`,
    )
    .action(async (argv: string[], opts: { env?: Record<string, string>; cwd?: string; wait?: boolean }) => {
      const { output, timeout } = ctx.settings();
      const spec = { argv, env: opts.env ?? {}, cwd: opts.cwd ?? '' };
      const { task } = await ctx.client().runTask({ spec }, ctx.unary());
      if (!task) throw new Error('management node accepted the task but returned none');
      // Table output is the id alone so scripts can capture it; json/yaml print the task.
      if (output === 'table') ctx.io.out(`${task.id}\n`);
      else if (!opts.wait) ctx.print(view(TaskSchema, task, () => taskFields(task, Date.now())));
      if (!opts.wait) return;

      const final = await waitForTask(ctx, task.id, Math.max(timeout, 30_000));
      if (output !== 'table') ctx.print(view(TaskSchema, final, () => taskFields(final, Date.now())));
      if (final.state === TaskState.DEAD) {
        const why = final.deadReason || 'no reason given';
        ctx.io.err(`schedctl: task ${final.id} is dead: ${why}${final.error ? ` (${final.error})` : ''}\n`);
        ctx.exit(EXIT_TASK_DEAD);
        return;
      }
      if (final.error) ctx.io.err(`schedctl: task ${final.id}: ${final.error}\n`);
      if (final.signal) ctx.io.err(`schedctl: task ${final.id} was killed by ${final.signal}\n`);
      ctx.exit(processExitCode(final.exitCode));
    });
}
