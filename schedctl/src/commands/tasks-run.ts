import { create } from '@bufbuild/protobuf';
import { describeRpcError } from '../../../common/errors.js';
import { RunTaskResponseSchema, type RunTaskResponse } from '../../../proto/gen/sched/v1/management_pb.js';
import { TaskSchema, TaskSpecSchema, TaskState, type Task, type TaskSpec } from '../../../proto/gen/sched/v1/types_pb.js';
import { view } from '../printers/view.js';
import { isRetryable, newIdempotencyKey, retryUnary } from '../retry.js';
import { UnplaceableError, waitForTasks } from '../wait.js';
import { EXIT_TASK_DEAD, RUN_PATIENCE_MS } from '../flags.js';
import type { Ctx } from './context.js';
import { taskFields } from './tasks-show.js';

// The flag parsers and the constants of the help text are in flags.ts (loaded at every start).
export {
  EXIT_TASK_DEAD,
  MAX_COUNT,
  parseCount,
  parseCpu,
  parseDurationFlag,
  parseEnvPair,
  parseKeyValue,
  parseMem,
  parsePriority,
  parseRetries,
  parseTimeLimit,
  RUN_PATIENCE_MS,
  wholeNumber,
} from '../flags.js';

/** A process exit status is 8 bits: anything outside would wrap (256 → 0, a failure reported as success). */
export function processExitCode(exitCode: number): number {
  return Number.isInteger(exitCode) && exitCode >= 0 && exitCode <= 255 ? exitCode : 1;
}

/** The exit code for finished tasks: 125 if any is dead, else the highest exit code. */
export function groupExitCode(tasks: readonly Task[]): number {
  // A program that could not start exits as a shell would say it (127 not found, 126 not executable).
  const startFailed = (t: Task): boolean => t.state === TaskState.DEAD && t.deadReason === 'start-failed';
  if (tasks.some((t) => t.state === TaskState.DEAD && !startFailed(t))) return EXIT_TASK_DEAD;
  return tasks.reduce((max, t) => Math.max(max, startFailed(t) ? processExitCode(t.exitCode) || 127 : processExitCode(t.exitCode)), 0);
}

export interface RunOptions {
  env?: Record<string, string>;
  cwd?: string;
  cpu?: number;
  mem?: number;
  label?: Record<string, string>;
  priority?: number;
  retries?: number;
  spread?: boolean;
  binpack?: boolean;
  scheduleTimeout?: number;
  timeout?: number;
  shell?: boolean;
  count: number;
  wait?: boolean;
  idempotencyKey?: string;
}

/** The spec the flags describe; unset flags leave the proto3 defaults (the manager's). */
export function specFromOptions(argv: string[], opts: Omit<RunOptions, 'count' | 'wait' | 'idempotencyKey'>) {
  return create(TaskSpecSchema, {
    // --shell: the words are one command line for /bin/sh, as typed (pipes, globs, $VARS expand on the worker).
    argv: opts.shell ? ['/bin/sh', '-c', argv.join(' ')] : argv,
    env: opts.env ?? {},
    cwd: opts.cwd ?? '',
    ...(opts.cpu !== undefined || opts.mem !== undefined
      ? { resources: { millicpu: BigInt(opts.cpu ?? 0), memoryBytes: BigInt(opts.mem ?? 0) } }
      : {}),
    constraints: opts.label ?? {},
    priority: opts.priority ?? 0,
    retries: opts.retries ?? 0,
    strategy: opts.spread ? 'spread' : opts.binpack ? 'binpack' : '',
    scheduleTimeoutMs: opts.scheduleTimeout ?? 0,
    timeoutMs: opts.timeout ?? 0,
  });
}

/** Says on stderr why a finished task did not simply succeed; `group` also names non-zero exits. */
function reportOutcome(ctx: Ctx, t: Task, group: boolean): void {
  if (t.state === TaskState.DEAD) {
    const why = t.deadReason || 'no reason given';
    ctx.io.err(`schedctl: task ${t.id} is dead: ${why}${t.error ? ` (${t.error})` : ''}\n`);
    return;
  }
  if (t.error) ctx.io.err(`schedctl: task ${t.id}: ${t.error}\n`);
  if (t.timedOut) ctx.io.err(`schedctl: task ${t.id} timed out and was killed by ${t.signal || 'a signal'}\n`);
  else if (t.signal) ctx.io.err(`schedctl: task ${t.id} was killed by ${t.signal}\n`);
  else if (group && !t.error && t.exitCode !== 0) ctx.io.err(`schedctl: task ${t.id} exited with ${t.exitCode}\n`);
}

/**
 * RunTask, sent again with the same idempotency key while the management node
 * gives no answer, so a task is created once however many attempts it takes.
 * A final failure names the key: the tasks may exist, and a rerun with
 * --idempotency-key KEY finds them instead of creating more.
 */
async function submit(ctx: Ctx, req: { spec: TaskSpec; count: number; idempotencyKey: string }): Promise<RunTaskResponse> {
  const { timeout, manager } = ctx.settings();
  ctx.debug(`idempotency key ${req.idempotencyKey}`);
  try {
    return await retryUnary((deadlineMs) => ctx.client().runTask(req, { deadlineMs }), {
      totalMs: Math.max(timeout, RUN_PATIENCE_MS),
      attemptMs: timeout,
      onRetry: (err, attempt, delayMs) =>
        ctx.debug(`run attempt ${attempt}: ${describeRpcError(err, manager)}; retrying in ${delayMs}ms with the same key`),
    });
  } catch (err) {
    if (!isRetryable(err)) throw err;
    const hint = `the task may have been created; to retry safely run the same command with --idempotency-key ${req.idempotencyKey}`;
    throw new Error(`${describeRpcError(err, manager)} (${hint})`, { cause: err });
  }
}

/** `schedctl tasks run` (registered in registry.ts). */
export async function tasksRun(ctx: Ctx, argv: string[], opts: RunOptions): Promise<void> {
  const { output, timeout } = ctx.settings();
  const spec = specFromOptions(argv, opts);
  const res = await submit(ctx, { spec, count: opts.count, idempotencyKey: opts.idempotencyKey ?? newIdempotencyKey() });
  const created = res.tasks.length > 0 ? res.tasks : res.task ? [res.task] : [];
  if (created.length === 0) throw new Error('management node accepted the task but returned none');
  const group = opts.count > 1;
  if (group && created.length !== opts.count) {
    ctx.io.err(`schedctl: asked for ${opts.count} tasks, the management node created ${created.length}\n`);
  }
  // Table output is the ids alone so scripts can capture them; json/yaml print the task or the response.
  const print = (r: RunTaskResponse, list: Task[]): void => {
    if (group) ctx.print(view(RunTaskResponseSchema, r, () => ({ kind: 'rows', head: ['ID'], rows: list.map((t) => [t.id]) })));
    else ctx.print(view(TaskSchema, list[0]!, () => taskFields(list[0]!, Date.now())));
  };
  if (output === 'table') ctx.io.out(created.map((t) => `${t.id}\n`).join(''));
  else if (!opts.wait) print(res, created);
  if (!opts.wait) return;

  let finals: Task[];
  try {
    finals = await waitForTasks(ctx, created.map((t) => t.id), Math.max(timeout, 30_000));
  } catch (err) {
    if (!(err instanceof UnplaceableError)) throw err;
    // It would wait forever: no worker the manager knows could ever run it. It stays pending (a bigger
    // worker may join); the exit code says it will not run as things are.
    ctx.io.err(`schedctl: ${err.message}; it stays pending (cancel it with: schedctl tasks cancel ${err.task.id})\n`);
    ctx.exit(EXIT_TASK_DEAD);
    return;
  }
  if (output !== 'table') print(create(RunTaskResponseSchema, { task: finals[0], tasks: group ? finals : [], groupId: res.groupId }), finals);
  for (const t of finals) reportOutcome(ctx, t, group);
  ctx.exit(groupExitCode(finals));
}
