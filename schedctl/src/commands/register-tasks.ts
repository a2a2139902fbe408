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
  parseMaxPids,
  parsePriority,
  parseRetries,
  parseUser,
  parseTail,
  parseTimeLimit,
  wholeNumber,
} from '../flags.js';
import { collectIds, parseAtFlag, parseInFlag } from '../gate-flags.js';
import type { Ctx } from './context.js';
import { lazy, lean, once } from './lazy.js';

/** --max-parallel: how many of a group may run at once; 0 = no limit. */
export const parseMaxParallel = (value: string): number => wholeNumber(value, 0, 2 ** 32 - 1, 'a whole number, 0 for no limit', false);

/** States tasks cancel --all may pick (running is scheduled: a worker accepted it). */
const CANCEL_STATES = ['pending', 'scheduled', 'running'] as const;

export function registerTasks(tasks: Command, ctx: Ctx): void {
  registerTasksRun(tasks, ctx);
  registerTasksLs(tasks, ctx);
  registerTasksShow(tasks, ctx);
  registerTasksCancel(tasks, ctx);
  registerTasksLogs(tasks, ctx);
  registerTasksWait(tasks, ctx);
  registerTasksHold(tasks, ctx);
  registerTasksUpdate(tasks, ctx);
}

function registerTasksHold(tasks: Command, ctx: Ctx): void {
  for (const [name, what] of [
    ['hold', 'keeps pending tasks from being placed until released (they stay pending, "held")'],
    ['release', 'lets held tasks be placed again'],
  ] as const) {
    tasks
      .command(name)
      .description(what)
      .argument('<id...>', 'task ids (full, a unique prefix, or the short id)')
      .addHelpText(
        'after',
        `
Only pending tasks can be held; holding a held task (or releasing one that is not) changes
nothing. A task just offered to a worker is refused until the worker answers: try again.
Exit status: 0 when every id was ${name === 'hold' ? 'held' : 'released'}; 1 if any was not (each is named on stderr).

Examples:
  schedctl tasks ${name} 0190b6b2-... 1a2b3c4d`,
      )
      .action(lazy(ctx, async () => (await import('./tasks-hold.js'))[name === 'hold' ? 'tasksHold' : 'tasksRelease']));
  }
}

function registerTasksUpdate(tasks: Command, ctx: Ctx): void {
  tasks
    .command('update')
    .description("changes a pending task's priority, resources or label constraints")
    .argument('<id>', 'task id')
    .option('--priority <n>', 'higher runs first', parsePriority)
    .option('--cpu <cores>', 'CPU to reserve: cores (0.5, 2) or millicpu (500m)', parseCpu)
    .option('--mem <size>', 'memory to reserve: 256Mi, 2G', parseMem)
    .option('-l, --label <KEY=VALUE>', 'worker label the task requires (repeatable): replaces every constraint', parseKeyValue)
    .option('--no-labels', 'drop every label constraint')
    .option('--max-parallel <k>', "the task's whole group: at most K of it offered or running at once (0 = no limit)", parseMaxParallel)
    .addHelpText(
      'after',
      `
Only while the task is pending (not yet accepted by a worker); a running or ended task is
refused. The task takes its new place in the queue at once. Prints the task as changed.
--max-parallel changes the task's whole group (tasks run --count), whatever the member's
state: a raised limit starts waiting members at once; a lowered one lets running members
finish and starts no more until fewer than K run.

Examples:
  schedctl tasks update 1a2b3c4d --priority 10
  schedctl tasks update 1a2b3c4d --cpu 2 --mem 4Gi
  schedctl tasks update 1a2b3c4d -l gpu=true -l zone=b
  schedctl tasks update 1a2b3c4d --no-labels
  schedctl tasks update 1a2b3c4d --max-parallel 8`,
    )
    .action(lazy(ctx, async () => (await import('./tasks-update.js')).tasksUpdate));
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
    .option('--schedule <name>', 'only the runs of this schedule (see: schedctl schedules ls)')
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
    .option('--user <name>', "run as this user (only on workers whose allowed_users lists it; default: the worker's run_as)", parseUser)
    .option('--max-pids <n>', "at most N processes and threads at once (default: the worker's max_pids)", parseMaxPids)
    .option('--retries <n>', 'times to place the task again if its worker is lost (default: 0)', parseRetries)
    .addOption(new Option('--spread', 'place on the emptiest worker that fits').conflicts('binpack'))
    .addOption(new Option('--binpack', 'place on the fullest worker that fits').conflicts('spread'))
    .option('--schedule-timeout <duration>', 'end dead if not placed within this time, e.g. 30s', parseTimeLimit)
    .option('--timeout <duration>', 'kill the task (its whole process group) if it runs longer, e.g. 10m', parseTimeLimit)
    .option('--shell', "run the words after -- as one /bin/sh -c command line (default: exec argv, no shell)")
    .option('--count <n>', 'run N copies as one group; prints every id; {index} in the command is each copy\'s index', parseCount, 1)
    .option('--max-parallel <k>', "with --count: at most K of the group are offered or running at once (Slurm's %K; 0 = no limit)", parseMaxParallel)
    .option('--after <ids>', 'run only after these tasks (or groups) succeeded (exit 0); repeatable or comma-separated', collectIds)
    .option('--after-any <ids>', 'run only after these tasks (or groups) ended, however they ended', collectIds)
    .option('--after-failed <ids>', 'run only after these tasks (or groups) failed (ended any other way than exit 0)', collectIds)
    .addOption(new Option('--at <time>', 'not before this time: ISO 8601 with its zone, e.g. 2026-12-01T03:00Z').argParser(parseAtFlag).conflicts('in'))
    .addOption(new Option('--in <duration>', 'not before this long from now, e.g. 10m, 2h').argParser(parseInFlag).conflicts('at'))
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

Groups (--count N): each task's command has {index} replaced by its index, 0 to N-1
({{index}} stays a literal {index}; without --count the command is kept as typed).
Every task gets SCHED_TASK_ID and SCHED_ATTEMPT in its environment; a group's tasks
also SCHED_GROUP_ID, SCHED_TASK_INDEX (0 to N-1) and SCHED_TASK_COUNT (N).
--max-parallel K runs at most K of them at once; the others wait, pending
"group at its limit" (tasks update ID --max-parallel K changes it for the whole group).

Workflows: --after, --after-any and --after-failed take task ids, short ids or group ids
(a group means every task of it). The task stays pending ("waiting for 1a2b3c4d: running")
until they have ended; if one ends so that the task can never run (a failed --after, a
successful --after-failed), it ends dead "dependency-failed", and so do its own dependents.
--at/--in keep it pending ("starts at ...") until then. tasks hold/release and tasks update
act on a task while it is pending.

Without --wait, exit status 0 once the tasks are accepted. With --wait:
${WAIT_EXIT_CODES}

Task files (-f FILE; tasks schedule -f FILE is go-schedule's spelling): a list of tasks,
or tasks: [...], each with argv (a list) or cmd (a program, with params), and any of
env, cwd, cpu, mem, labels, priority, user, max_pids, retries, strategy (spread|binpack),
schedule_timeout, timeout, shell, count, max_parallel, after_ok, after_any, after_failed,
at, in. Flags on the command line are every entry's
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
  schedctl tasks run --user builder --mem 2Gi --max-pids 512 -- make -j8
  schedctl tasks run --count 20 --spread --schedule-timeout 30s --wait -- ./shard.sh
  schedctl tasks run --count 100 --max-parallel 4 -- ./render.sh --frame '{index}'
  schedctl tasks run --shell --timeout 1h -- 'make -j4 && ./deploy.sh > deploy.log'
  schedctl tasks run --idempotency-key nightly-2024-06-01 -- ./backup.sh   # safe to re-run
  schedctl tasks run -f tasks.yaml --wait
  b=$(schedctl tasks run --after "$a" -- ./step2.sh)    # once $a succeeded
  schedctl tasks run --after-failed "$a,$b" -- ./alert.sh
  schedctl tasks run --at 2026-12-01T03:00Z -- ./backup.sh
  schedctl tasks run --in 10m -- ./retry-upload.sh`,
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
