// schedctl tasks <cmd>: names, flags and help texts; each action in ./tasks-<cmd>.ts.
import { Option, type Command } from 'commander';
import {
  EXIT_TASK_DEAD,
  RUN_PATIENCE_MS,
  TASK_STATE_NAMES,
  parseCount,
  parseCpu,
  parseGrace,
  parseIdempotencyKey,
  parseKeyValue,
  parseLimit,
  parseMem,
  parsePriority,
  parseRetries,
  parseTail,
  parseTimeLimit,
} from '../flags.js';
import type { Ctx } from './context.js';
import { lazy, lean, once } from './lazy.js';

export function registerTasks(tasks: Command, ctx: Ctx): void {
  registerTasksRun(tasks, ctx);
  registerTasksLs(tasks, ctx);
  registerTasksShow(tasks, ctx);
  registerTasksCancel(tasks, ctx);
  registerTasksLogs(tasks, ctx);
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
