// The one place commands are registered: schedctl <target> <cmd>.
//
// Start-up time: registering a command costs only what commander needs to
// parse its flags and print its help (names, descriptions, options, help
// text, the flag parsers in ../flags.ts). Its action lives in its own module
// (./<target>-<cmd>.ts), loaded through import() when the command runs, so
// that `--help` and every other command run none of its top-level code (nor
// that of gRPC, protobuf, zod, yaml and x509 behind it).
import { Option, type Command } from 'commander';
import { ROLES } from '../../../common/roles.js';
import {
  collect,
  EXIT_TASK_DEAD,
  parseCount,
  parseCpu,
  parseDays,
  parseGrace,
  parseIdempotencyKey,
  parseKeyValue,
  parseLimit,
  parseMem,
  parsePriority,
  parseRetries,
  parseTail,
  parseTimeLimit,
  RUN_PATIENCE_MS,
  TASK_STATE_NAMES,
} from '../flags.js';
import type { Ctx } from './context.js';

/**
 * Commands whose action calls the manager only through ctx.unaryBytes (the
 * listings), with the loader of their action: before they run, the grpc-js
 * client is not loaded (runtime.ts), and their action's module is loaded
 * alongside the runtime instead of after it (cli.ts's preAction hook).
 */
const lean = new WeakMap<Command, () => Promise<unknown>>();

export const isLean = (command: Command): boolean => lean.has(command);

/** Starts loading a lean command's action; the action awaits the same load (and its failure). */
export function preloadLean(command: Command): void {
  lean
    .get(command)?.()
    .catch(() => undefined);
}

/** The first call's promise, for every call. */
function once<T>(load: () => Promise<T>): () => Promise<T> {
  let loading: Promise<T> | undefined;
  return () => (loading ??= load());
}

/** A command's action, loaded when it runs: `load` imports its module and picks the function. */
function lazy<A extends unknown[]>(ctx: Ctx, load: () => Promise<(ctx: Ctx, ...args: A) => Promise<void>>) {
  return async (...args: A): Promise<void> => (await load())(ctx, ...args);
}

export function registerCommands(program: Command, ctx: Ctx): void {
  const workers = program.command('workers').description('remote servers that are used for running tasks');
  registerWorkersLs(workers, ctx);
  registerWorkersShow(workers, ctx);
  registerWorkersDrain(workers, ctx);

  const tasks = program.command('tasks').description('tasks that can be scheduled on the cluster of workers');
  registerTasksRun(tasks, ctx);
  registerTasksLs(tasks, ctx);
  registerTasksShow(tasks, ctx);
  registerTasksCancel(tasks, ctx);
  registerTasksLogs(tasks, ctx);

  const tls = program.command('tls').description('certificates for mutual TLS between the management node, workers and schedctl');
  registerTlsCaCreate(tls.command('ca').description('the cluster certificate authority'), ctx);
  registerTlsCertCreate(tls.command('cert').description('certificates signed by the cluster CA'), ctx);

  registerStatus(program, ctx);
}

function registerStatus(program: Command, ctx: Ctx): void {
  program
    .command('status')
    .description('management node version, store, worker and task counts')
    .action(lazy(ctx, async () => (await import('./status.js')).status));
}

function registerTasksCancel(tasks: Command, ctx: Ctx): void {
  tasks
    .command('cancel')
    .description('stops tasks: a pending task ends dead at once; a running one gets SIGTERM, SIGKILL after the grace')
    .argument('<id...>', 'task ids')
    .option('--grace <duration>', 'time between SIGTERM and SIGKILL, e.g. 10s (default: the worker\'s cancel_grace)', parseGrace)
    .option('--no-wait', 'return once the cancel is stored, without waiting for running tasks to stop')
    .action(lazy(ctx, async () => (await import('./tasks-cancel.js')).tasksCancel));
}

function registerTasksLogs(tasks: Command, ctx: Ctx): void {
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
    .action(lazy(ctx, async () => (await import('./tasks-logs.js')).tasksLogs));
}

function registerTasksLs(tasks: Command, ctx: Ctx): void {
  const load = once(async () => (await import('./tasks-ls.js')).tasksLs);
  const ls = tasks
    .command('ls')
    .description('lists tasks in the order the management node keeps them (by id)')
    .addOption(new Option('--state <state>', 'only tasks in this state').choices(TASK_STATE_NAMES))
    .option('--worker <id>', 'only tasks placed on this worker')
    .option('--group <id>', 'only tasks of this group (submitted together by tasks run --count)')
    .option('--limit <n>', 'at most this many tasks; 0 lists all', parseLimit, 100)
    .addHelpText(
      'after',
      `
REASON says why a pending task is not placed yet, why a dead task will never
run, or why a done task failed to start. PRI appears when a task has a
priority, GROUP when a task belongs to a group (unless --group is given).`,
    )
    .action(lazy(ctx, load));
  lean.set(ls, load);
}

function registerTasksRun(tasks: Command, ctx: Ctx): void {
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
    .action(lazy(ctx, async () => (await import('./tasks-run.js')).tasksRun));
}

function registerTasksShow(tasks: Command, ctx: Ctx): void {
  tasks
    .command('show')
    .description('shows one task: command, state, worker, times, exit code and the tail of its output')
    .argument('<id>', 'task id (printed by tasks run, listed by tasks ls)')
    .action(lazy(ctx, async () => (await import('./tasks-show.js')).tasksShow));
}

function registerTlsCaCreate(ca: Command, ctx: Ctx): void {
  ca.command('create')
    .description('creates the cluster certificate authority: ca.pem and ca-key.pem (keep the key offline)')
    .option('--dir <dir>', 'where to write the files', '.')
    .option('--name <name>', 'the CA\'s common name', 'sched CA')
    .option('--days <n>', 'validity in days', parseDays, 3650)
    .option('--force', 'overwrite existing files')
    .action(lazy(ctx, async () => (await import('./tls-ca-create.js')).tlsCaCreate));
}

function registerTlsCertCreate(cert: Command, ctx: Ctx): void {
  cert
    .command('create')
    .description('creates a certificate signed by the cluster CA: <name>.pem and <name>-key.pem')
    .addOption(new Option('--role <role>', 'manager (serves), worker (may only Connect) or admin (schedctl)').choices(ROLES).makeOptionMandatory())
    .option('--name <name>', 'common name and file name (default: the role)')
    .option('--host <host>', 'DNS name or IP the manager is reached at (repeatable; default for a manager: localhost and 127.0.0.1)', collect)
    .option('--ca-dir <dir>', 'where ca.pem and ca-key.pem are', '.')
    .option('--dir <dir>', 'where to write the files', '.')
    .option('--days <n>', 'validity in days', parseDays, 365)
    .option('--force', 'overwrite existing files')
    .addHelpText(
      'after',
      `
Examples:
  schedctl tls ca create --dir /etc/sched/tls
  schedctl tls cert create --role manager --host manager.example.com --host 10.0.0.5 --ca-dir /etc/sched/tls --dir /etc/sched/tls
  schedctl tls cert create --role worker --name worker-17 --ca-dir /etc/sched/tls --dir ./worker-17
  schedctl tls cert create --role admin --ca-dir /etc/sched/tls --dir ~/.sched`,
    )
    .action(lazy(ctx, async () => (await import('./tls-cert-create.js')).tlsCertCreate));
}

function registerWorkersDrain(workers: Command, ctx: Ctx): void {
  for (const drain of [true, false]) {
    workers
      .command(drain ? 'drain' : 'undrain')
      .description(
        drain
          ? 'stops placing new tasks on a worker; its running tasks go on (see: schedctl tasks ls --worker ID)'
          : 'lets a drained worker take new tasks again',
      )
      .argument('<id>', 'worker id (see: schedctl workers ls)')
      .action(async (id: string) => (await import('./workers-drain.js')).workersDrain(ctx, drain, id));
  }
}

function registerWorkersLs(workers: Command, ctx: Ctx): void {
  const load = once(async () => (await import('./workers-ls.js')).workersLs);
  const ls = workers
    .command('ls')
    .description('shows all the remote linux machines that were and are connected to the management node')
    .action(lazy(ctx, load));
  lean.set(ls, load);
}

function registerWorkersShow(workers: Command, ctx: Ctx): void {
  workers
    .command('show')
    .description('shows everything the management node knows about one worker')
    .argument('<id>', 'worker id (see: schedctl workers ls)')
    .action(lazy(ctx, async () => (await import('./workers-show.js')).workersShow));
}
