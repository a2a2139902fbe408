// schedctl tasks <cmd>: names, flags and help texts; each action in ./tasks-<cmd>.ts.
import { Option, type Command } from 'commander';
import {
  collect,
  EXIT_TASK_DEAD,
  RUN_PATIENCE_MS,
  OUTCOME_NAMES,
  TASK_STATE_CHOICES,
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

/** States tasks cancel --all may pick (running is scheduled: a worker accepted it). */
const CANCEL_STATES = ['pending', 'scheduled', 'running'] as const;

export function registerTasks(tasks: Command, ctx: Ctx): void {
  registerTasksRun(tasks, ctx);
  registerTasksLs(tasks, ctx);
  registerTasksShow(tasks, ctx);
  registerTasksCancel(tasks, ctx);
  registerTasksLogs(tasks, ctx);
  registerTasksWait(tasks, ctx);
}

/** The exit codes of every wait (tasks wait, tasks run --wait), for the help texts. */
const WAIT_EXIT_CODES = `Exit status: 0 when every task succeeded; else the exit code of the first task that
failed, in the order given (127 or 126 if its program could not start, as a shell says;
128+N if signal N killed it); ${EXIT_TASK_DEAD} if any task is dead (will never run), or no connected
worker could ever fit one (it stays pending); 130 on Ctrl-C, which cancels nothing and
says how to wait again; 1 if the management node fails or cannot be reached; 2 on a
usage or config error.`;

function registerTasksWait(tasks: Command, ctx: Ctx): void {
  tasks
    .command('wait')
    .description('waits until tasks have ended and exits with their exit code')
    .argument('[id...]', 'task ids (full, a unique prefix, or the short id)')
    .option('--group <id>', 'every task of this group (repeatable)', collect)
    .addHelpText(
      'after',
      `
Waits through manager restarts and failovers. While a task is pending, why it
waits is said on stderr when that changes. On a terminal, more than one task
gets a progress bar on stderr; otherwise each task that ends gets a line there.
-o json and -o yaml print the ended tasks.

${WAIT_EXIT_CODES}

Examples:
  schedctl tasks wait 0190b6b2-...
  schedctl tasks wait --group 0190b6b2-...; echo $?`,
    )
    .action(lazy(ctx, async () => (await import('./tasks-wait.js')).tasksWait));
}

function registerTasksCancel(tasks: Command, ctx: Ctx): void {
  tasks
    .command('cancel')
    .description('stops tasks: a pending task ends dead at once; a running one gets SIGTERM, SIGKILL after the grace')
    .argument('[id...]', 'task ids')
    .option('--grace <duration>', 'time between SIGTERM and SIGKILL, e.g. 10s (default: the worker\'s cancel_grace)', parseGrace)
    .option('--no-wait', 'return once the cancel is stored, without waiting for running tasks to stop')
    .option('--all', 'every task that has not ended and matches --group, --state and --worker')
    .option('--group <id>', 'with --all: only tasks of this group')
    .addOption(new Option('--state <state>', 'with --all: only tasks in this state').choices(CANCEL_STATES))
    .option('--worker <id>', 'with --all: only tasks placed on this worker')
    .option('--yes', 'with --all and no filter: cancel every task that has not ended')
    .addHelpText(
      'after',
      `
Exit status: 0 when every task named was cancelled (or had already ended); 1 if
any id named no task, or the management node fails or cannot be reached.
-o json and -o yaml print the management node's response.

Examples:
  schedctl tasks cancel 0190b6b2-... 1a2b3c4d
  schedctl tasks cancel --all --group 0190b6b2-...
  schedctl tasks cancel --all --state pending --worker w1
  schedctl tasks cancel --all --yes          # everything not ended`,
    )
    .action(lazy(ctx, async () => (await import('./tasks-cancel.js')).tasksCancel));
}

function registerTasksLogs(tasks: Command, ctx: Ctx): void {
  tasks
    .command('logs')
    .description("prints a task's output, read from its worker through the management node")
    .argument('<id>', 'task id')
    .option('-f, --follow', 'keep printing new output until the task ends (waits for a pending task to start)')
    .option('--tail <n>', 'only the last N lines', parseTail)
    .option('--stderr', 'standard error instead of standard output')
    .addHelpText(
      'after',
      `
Logs stay on the worker that ran the task (its data_dir, capped by log_max_size and removed
after log_retention); the management node relays them, so the worker may be behind NAT.
It must be connected. The latest attempt's log is shown.

With -f, a pending task is waited for, and a worker that is briefly disconnected or
a management node that restarts or fails over is waited out: the output goes on
where it was. The reason is said once on stderr.

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
    .description('lists tasks, newest first')
    .addOption(new Option('--state <state>', 'only tasks in this state (running: scheduled)').choices(TASK_STATE_CHOICES))
    .addOption(new Option('--outcome <outcome>', 'only ended tasks that ended so').choices(OUTCOME_NAMES))
    .option('--worker <id>', 'only tasks placed on this worker (id, prefix or name)')
    .option('--group <id>', 'only tasks of this group (submitted together by tasks run --count)')
    .option('--limit <n>', 'at most this many tasks; 0 lists all', parseLimit, 100)
    .option('--all', 'every task that matches (as --limit 0)')
    .option('--oldest-first', 'in submission order, oldest first')
    .option('-w, --watch', 'after the listing, follow changes: a terminal redraws the table, otherwise one line per change')
    .addHelpText(
      'after',
      `
The table fits 80 columns: ID is the task's short id (its last 8 characters) and WORKER the
worker id's first 8; either goes wherever an id does. COMMAND and REASON are cut with …
when long. REASON says why a pending task is not placed yet, why a dead task will never
run, why a done one failed to start or that it timed out. -o wide shows full ids and every
column (OUTCOME, PRI, GROUP); -o name the full ids alone; -o json the tasks and the total.
When more tasks match than are shown, stderr says so (showing 100 of 1,048).

Outcomes: succeeded (exit 0), failed (another exit code, a signal, or it could not start),
timed-out, cancelled, lost (dead otherwise: worker lost, never placed in time, drained).

Examples:
  schedctl tasks ls --state running
  schedctl tasks ls --outcome failed --limit 20
  schedctl -o name tasks ls --state pending --all | xargs schedctl tasks cancel`,
    )
    .action(lazy(ctx, load));
  lean.set(ls, load);
  // --watch streams (WatchEvents) through the grpc-js client: not lean then. Commander
  // reports the option as it parses it, before the preAction hook asks isLean.
  ls.on('option:watch', () => lean.delete(ls));
}

function registerTasksRun(tasks: Command, ctx: Ctx): void {
  tasks
    .command('run')
    .alias('schedule')
    .description('schedules a command (or every task of a file) on the workers and prints the task ids')
    .argument('[command...]', 'the program and its arguments, after --')
    .option('-f, --file <file>', 'a task file: a list of tasks, each with these flags as fields (YAML or JSON; - reads stdin)')
    .option('-e, --env <KEY=VALUE>', 'environment variable for the task (repeatable)', parseKeyValue)
    .option('--cwd <dir>', "working directory on the worker (default: the worker's own)")
    .option('--cpu <cores>', 'CPU to reserve: cores (0.5, 2) or millicpu (500m)', parseCpu)
    .option('--mem <size>', 'memory to reserve, a whole number with a unit: 256Mi, 1536Mi, 2G', parseMem)
    .option('-l, --label <KEY=VALUE>', 'worker label the task requires (repeatable; all must match)', parseKeyValue)
    .option('--priority <n>', 'higher runs first; ties go to the earlier submission (default: 0)', parsePriority)
    .option('--retries <n>', 'times to place the task again if its worker is lost (default: 0)', parseRetries)
    .addOption(new Option('--spread', 'place on the emptiest worker that fits').conflicts('binpack'))
    .addOption(new Option('--binpack', 'place on the fullest worker that fits').conflicts('spread'))
    .option('--schedule-timeout <duration>', 'end dead if not placed within this time, e.g. 30s', parseTimeLimit)
    .option('--timeout <duration>', 'kill the task (its whole process group) if it runs longer, e.g. 10m', parseTimeLimit)
    .option('--shell', "run the words after -- as one /bin/sh -c command line (default: exec argv, no shell)")
    .option('--count <n>', 'run N copies as one group; prints every id', parseCount, 1)
    .option('--wait', "wait until the tasks are done or dead and exit with their exit code (as tasks wait)")
    .option('--idempotency-key <key>', "1-128 of A-Za-z0-9._:-; a rerun with the same key returns the first run's tasks (default: a fresh UUID)", parseIdempotencyKey)
    .addHelpText(
      'after',
      `
Put the command after --, so its own options are not taken for schedctl's.
Without --spread or --binpack the management node's default strategy places the task.

Output: the task id; with --count N > 1, every task id, one per line. -o json and
-o yaml print the task, or with --count the whole response with its group_id
(list the group with: schedctl tasks ls --group ID).

Without --wait, exit status 0 once the tasks are accepted. With --wait:
${WAIT_EXIT_CODES}

Task files (-f FILE; tasks schedule -f FILE is go-schedule's spelling): a list of tasks,
or tasks: [...], each with argv (a list) or cmd (a program, with params), and any of
env, cwd, cpu, mem, labels, priority, retries, strategy (spread|binpack),
schedule_timeout, timeout, shell, count. Flags on the command line are every entry's
defaults. All entries are checked before any is submitted; errors name the entry and
field. Each entry has its own idempotency key (the run's key and its index), so a
rerun with --idempotency-key KEY submits only what is missing. See examples/tasks.yaml.

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
  schedctl tasks run --idempotency-key nightly-2024-06-01 -- ./backup.sh   # safe to re-run
  schedctl tasks run -f tasks.yaml --wait`,
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
