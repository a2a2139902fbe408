import { create } from '@bufbuild/protobuf';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { MAX_UINT32_MS, parseDurationIn, type DurationRange } from '../../../common/duration.js';
import { parseMemorySize, parseMillicpu } from '../../../common/size.js';
import { describeRpcError } from '../../../common/errors.js';
import { RunTaskResponseSchema, type RunTaskResponse } from '../../../proto/gen/sched/v1/management_pb.js';
import { TaskSchema, TaskSpecSchema, TaskState, type Task, type TaskSpec } from '../../../proto/gen/sched/v1/types_pb.js';
import { view } from '../printers/index.js';
import { isRetryable, newIdempotencyKey, parseIdempotencyKey, retryUnary } from '../retry.js';
import { waitForTasks } from '../wait.js';
import type { Ctx } from './context.js';
import { taskFields } from './tasks-show.js';

/** Exit code of `tasks run --wait` when a task will never run (as docker run uses 125 for its own failures). */
export const EXIT_TASK_DEAD = 125;

const UINT32_MAX = 2 ** 32 - 1;
const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/**
 * Collects repeated KEY=VALUE flags (--env, --label); commander reports the
 * throw as a usage error naming the flag.
 */
export function parseKeyValue(value: string, previous: Record<string, string> | undefined): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError('expected KEY=VALUE');
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

/** --env KEY=VALUE (repeatable). */
export const parseEnvPair = parseKeyValue;

/** --cpu: cores ("0.5", "2") or millicpu ("500m"), as millicpu. */
export function parseCpu(value: string): number {
  try {
    return parseMillicpu(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/** --mem: "256Mi", "1Gi", "512M" or bytes, as bytes. */
export function parseMem(value: string): number {
  try {
    return parseMemorySize(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/** A whole-number flag value within [min, max]; `signed` lets it carry a + or - sign. */
export function wholeNumber(value: string, min: number, max: number, expected: string, signed = true): number {
  const n = (signed ? /^[+-]?\d+$/ : /^\d+$/).test(value.trim()) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected ${expected}`);
  return n;
}

/** --priority: a signed 32-bit whole number; higher runs first. */
export const parsePriority = (value: string): number =>
  wholeNumber(value, INT32_MIN, INT32_MAX, `a whole number from ${INT32_MIN} to ${INT32_MAX}`);

/** --retries: how many times a task is placed again after its worker is lost (spec.retries is a uint32). */
export const parseRetries = (value: string): number => wholeNumber(value, 0, UINT32_MAX, `a whole number from 0 to ${UINT32_MAX}`);

/** At most this many tasks per RunTask: the management node refuses a larger count (cluster.ts MAX_COUNT). */
export const MAX_COUNT = 10_000;

/** --count: how many copies to run, 1 to MAX_COUNT. */
export const parseCount = (value: string): number => wholeNumber(value, 1, MAX_COUNT, `a whole number from 1 to ${MAX_COUNT}`);

/** A duration flag ("30s", "5m") in milliseconds within range; commander reports the throw naming the flag. */
export function parseDurationFlag(value: string, range: DurationRange): number {
  try {
    return parseDurationIn(value, range);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/**
 * --schedule-timeout / --timeout: a duration in milliseconds, 0 meaning no
 * limit, at most what the spec's uint32 *_ms fields hold (about 49.7 days).
 */
export const parseTimeLimit = (value: string): number => parseDurationFlag(value, { min: 0, max: MAX_UINT32_MS });

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

interface RunOptions {
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

/** RunTask patience when the manager does not answer: retries go on this long (or the configured timeout, if longer). */
export const RUN_PATIENCE_MS = 30_000;

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

export function registerTasksRun(tasks: Command, ctx: Ctx): void {
  tasks
    .command('run')
    .description('schedules a command on a worker and prints the task id')
    .argument('<command...>', 'the program and its arguments, after --')
    .option('-e, --env <KEY=VALUE>', 'environment variable for the task (repeatable)', parseKeyValue)
    .option('--cwd <dir>', "working directory on the worker (default: the worker's own)")
    .option('--cpu <cores>', 'CPU to reserve: cores (0.5, 2) or millicpu (500m)', parseCpu)
    .option('--mem <size>', 'memory to reserve: 256Mi, 1Gi, 512M or bytes', parseMem)
    .option('-l, --label <KEY=VALUE>', 'worker label the task requires (repeatable; all must match)', parseKeyValue)
    .option('--priority <n>', 'higher runs first; ties go to the earlier submission (default: 0)', parsePriority)
    .option('--retries <n>', 'times to place the task again if its worker is lost (default: 0)', parseRetries)
    .addOption(new Option('--spread', 'place on the emptiest worker that fits').conflicts('binpack'))
    .addOption(new Option('--binpack', 'place on the fullest worker that fits').conflicts('spread'))
    .option('--schedule-timeout <duration>', 'end dead if not placed within this time, e.g. 30s', parseTimeLimit)
    .option('--timeout <duration>', 'kill the task (its whole process group) if it runs longer, e.g. 10m', parseTimeLimit)
    .option('--shell', "run the words after -- as one /bin/sh -c command line (default: exec argv, no shell)")
    .option('--count <n>', 'run N copies as one group; prints every id', parseCount, 1)
    .option('--wait', "wait until the task is done or dead and exit with the task's exit code")
    .option('--idempotency-key <key>', "1-128 of A-Za-z0-9._:-; a rerun with the same key returns the first run's tasks (default: a fresh UUID)", parseIdempotencyKey)
    .addHelpText(
      'after',
      `
Put the command after --, so its own options are not taken for schedctl's.
Without --spread or --binpack the management node's default strategy places the task.

Output: the task id; with --count N > 1, every task id, one per line. -o json and
-o yaml print the task, or with --count the whole response with its group_id
(list the group with: schedctl tasks ls --group ID).

Exit status: 0 once the tasks are accepted; with --wait, the task's exit code
(with --count, the highest of them), 127 or 126 if the program could not start (as a
shell), ${EXIT_TASK_DEAD} if any task is otherwise dead (will never run). 1 if the management node fails or cannot be reached, 2 on a usage or config
error.

Retries: each invocation sends one idempotency key, a fresh UUID unless
--idempotency-key KEY names it. While the management node gives no answer
(unreachable, restarting, past the configured timeout) the request is sent again
with that key, with backoff, for up to ${RUN_PATIENCE_MS / 1000}s (or the configured timeout, if longer);
the first request with a key creates the tasks, a repeat answers with the same
ones. Name a key of your own (a job name) to make rerunning the whole command
safe: another schedctl with the key prints the same ids and starts nothing. The
key is remembered as long as its tasks are kept. When schedctl gives up, the
error names the key to retry with.

Examples:
  schedctl tasks run -- /bin/echo hello
  id=$(schedctl tasks run -e LANG=C --cwd /srv -- make test)
  schedctl tasks run --wait -- sh -c 'exit 3'; echo $?   # 3
  schedctl tasks run --cpu 0.5 --mem 256Mi --label gpu=true --priority 10 -- ./train
  schedctl tasks run --count 20 --spread --schedule-timeout 30s --wait -- ./shard.sh
  schedctl tasks run --shell --timeout 1h -- 'make -j4 && ./deploy.sh > deploy.log'
  schedctl tasks run --idempotency-key nightly-2024-06-01 -- ./backup.sh   # safe to re-run`,
    )
    .action(async (argv: string[], opts: RunOptions) => {
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

      const finals = await waitForTasks(ctx, created.map((t) => t.id), Math.max(timeout, 30_000));
      if (output !== 'table') print(create(RunTaskResponseSchema, { task: finals[0], tasks: group ? finals : [], groupId: res.groupId }), finals);
      for (const t of finals) reportOutcome(ctx, t, group);
      ctx.exit(groupExitCode(finals));
    });
}
