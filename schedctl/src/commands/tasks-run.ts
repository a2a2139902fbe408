import { create } from '@bufbuild/protobuf';
import { describeRpcError } from '../../../common/errors.js';
import { RunTaskResponseSchema, type RunTaskResponse } from '../../../proto/gen/schedapi/v1/management_pb.js';
import { TaskSchema, TaskSpecSchema, type Task, type TaskSpec } from '../../../proto/gen/schedapi/v1/types_pb.js';
import { view } from '../printers/view.js';
import { isRetryable, newIdempotencyKey, retryUnary } from '../retry.js';
import type { Command } from 'commander';
import { RUN_PATIENCE_MS } from '../flags.js';
import { notBeforeOf } from '../gate-flags.js';
import type { Ctx } from './context.js';
import { taskFields } from './tasks-show.js';
import { waitAndReport } from './tasks-wait.js';

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
  parseMaxPids,
  parsePriority,
  parseRetries,
  parseUser,
  parseTimeLimit,
  RUN_PATIENCE_MS,
  wholeNumber,
} from '../flags.js';

// The exit code of a wait and how a task ended are in wait.ts (shared with tasks wait).
export { groupExitCode, processExitCode } from '../wait.js';

export interface RunOptions {
  env?: Record<string, string>;
  cwd?: string;
  cpu?: number;
  mem?: number;
  label?: Record<string, string>;
  priority?: number;
  /** --user: run as this user; --max-pids: its pids limit. */
  user?: string;
  maxPids?: number;
  retries?: number;
  spread?: boolean;
  binpack?: boolean;
  scheduleTimeout?: number;
  timeout?: number;
  shell?: boolean;
  count: number;
  /** --max-parallel: at most this many of the group at once (0 = no limit). */
  maxParallel?: number;
  /** --after, --after-any, --after-failed: task or group ids (gate-flags.ts). */
  after?: string[];
  afterAny?: string[];
  afterFailed?: string[];
  /** --at: unix ms; --in: ms from now. */
  at?: number;
  in?: number;
  wait?: boolean;
  idempotencyKey?: string;
  /** -f: a task file (batch-file.ts). */
  file?: string;
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
    user: opts.user ?? '',
    maxPids: opts.maxPids ?? 0,
    retries: opts.retries ?? 0,
    strategy: opts.spread ? 'spread' : opts.binpack ? 'binpack' : '',
    scheduleTimeoutMs: opts.scheduleTimeout ?? 0,
    timeoutMs: opts.timeout ?? 0,
    maxParallel: opts.maxParallel ?? 0,
    afterOk: opts.after ?? [],
    afterAny: opts.afterAny ?? [],
    afterFailed: opts.afterFailed ?? [],
    notBeforeUnixMs: notBeforeOf(opts, Date.now()),
  });
}

/**
 * RunTask, sent again with the same idempotency key while the management node
 * gives no answer, so a task is created once however many attempts it takes.
 * A final failure names the key: the tasks may exist, and a rerun with
 * --idempotency-key KEY finds them instead of creating more.
 */
export async function submit(ctx: Ctx, req: { spec: TaskSpec; count: number; idempotencyKey: string }): Promise<RunTaskResponse> {
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

/** `schedctl tasks run` (registered in register-tasks.ts); with -f, tasks-run-file.ts. */
export async function tasksRun(ctx: Ctx, argv: string[], opts: RunOptions, cmd: Command): Promise<void> {
  if (opts.file !== undefined) {
    if (argv.length > 0) cmd.error('error: give either a command after -- or a task file with -f, not both', { code: 'commander.conflictingOption' });
    return (await import('./tasks-run-file.js')).tasksRunFile(ctx, opts.file, opts, (flag) => cmd.getOptionValueSource(flag) === 'cli');
  }
  if (argv.length === 0) cmd.error("error: missing required argument 'command' (or a task file: -f FILE)", { code: 'commander.missingArgument' });
  const { output } = ctx.settings();
  // Tables (and -o name) are the ids alone; json and yaml print the messages.
  const asIds = output !== 'json' && output !== 'yaml';
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
  if (asIds) ctx.io.out(created.map((t) => `${t.id}\n`).join(''));
  else if (!opts.wait) print(res, created);
  if (!opts.wait) return;

  const groups = new Map(res.groupId ? created.map((t) => [t.id, res.groupId]) : []);
  const finals = await waitAndReport(ctx, { ids: created.map((t) => t.id), groups });
  if (finals && !asIds) print(create(RunTaskResponseSchema, { task: finals[0], tasks: group ? finals : [], groupId: res.groupId }), finals);
}
