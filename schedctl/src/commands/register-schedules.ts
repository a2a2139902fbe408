// schedctl schedules <cmd>: names, flags and help texts; each action in ./schedules-<cmd>.ts.
import { Option, type Command } from 'commander';
import { parseDurationFlag, wholeNumber } from '../flags.js';
import type { Ctx } from './context.js';
import type { CreateOptions } from './schedules-create.js';
import { lazy } from './lazy.js';

/** The tasks run flags that describe the task itself (tasks-run.ts's specFromOptions reads them); the others are about one submission. */
const SPEC_FLAGS = ['env', 'cwd', 'cpu', 'mem', 'label', 'priority', 'user', 'maxPids', 'retries', 'spread', 'binpack', 'scheduleTimeout', 'timeout', 'shell'];

const NAME = 'schedule name (see: schedctl schedules ls)';
const MAX_UINT32_MS = 2 ** 32 - 1;

export function registerSchedules(schedules: Command, ctx: Ctx): void {
  registerCreate(schedules, ctx);
  schedules
    .command('ls')
    .description('lists the schedules: cron, time zone, next and latest run')
    .action(lazy(ctx, async () => (await import('./schedules-ls.js')).schedulesLs));
  schedules
    .command('show')
    .description('shows a schedule: its task, its next runs and its latest runs with their tasks and outcomes')
    .argument('<name>', NAME)
    .action(lazy(ctx, async () => (await import('./schedules-show.js')).schedulesShow));
  schedules
    .command('rm')
    .description('deletes a schedule (the tasks it made are kept)')
    .argument('<name>', NAME)
    .action(lazy(ctx, async () => (await import('./schedules-edit.js')).schedulesRm));
  schedules
    .command('pause')
    .description('stops a schedule from running; the times that pass meanwhile are skipped')
    .argument('<name>', NAME)
    .action(async (name: string) => (await import('./schedules-edit.js')).schedulesPause(ctx, name, true));
  schedules
    .command('resume')
    .description('lets a paused schedule run again, from its next time on')
    .argument('<name>', NAME)
    .action(async (name: string) => (await import('./schedules-edit.js')).schedulesPause(ctx, name, false));
  schedules
    .command('trigger')
    .description('runs a schedule once now (its overlap policy applies) and prints the task id')
    .argument('<name>', NAME)
    .action(lazy(ctx, async () => (await import('./schedules-edit.js')).schedulesTrigger));
}

function registerCreate(schedules: Command, ctx: Ctx): void {
  const cmd = schedules
    .command('create')
    .description('runs a command as a task at every time a cron expression gives')
    .argument('<name>', '1-63 of a-z, 0-9 and -, starting with a letter')
    .argument('<command...>', 'the program and its arguments, after --')
    .requiredOption('--cron <expr>', 'five fields (minute hour day-of-month month day-of-week), or six with seconds first')
    .option('--time-zone <zone>', 'IANA time zone the cron expression is read in, e.g. Europe/Berlin (default: UTC)')
    .addOption(new Option('--overlap <policy>', 'when a run is due while the previous one has not ended').choices(['skip', 'allow', 'replace']).default('skip'))
    .option('--starting-deadline <duration>', 'make up a run missed while no management node led, if no more late than this (default: never)', (v: string) =>
      parseDurationFlag(v, { min: 0, max: MAX_UINT32_MS }),
    )
    .option('--history <n>', 'how many of the latest runs to keep (default: 10)', (v: string) => wholeNumber(v, 1, 100, 'a whole number from 1 to 100', false))
    .option('--paused', 'create it paused (schedctl schedules resume NAME starts it)');
  // The task's flags are tasks run's own options (one definition, one parser: specFromOptions).
  const run = schedules.parent?.commands.find((c) => c.name() === 'tasks')?.commands.find((c) => c.name() === 'run');
  for (const opt of run?.options ?? []) if (SPEC_FLAGS.includes(opt.attributeName())) cmd.addOption(opt);
  cmd
    .addHelpText(
      'after',
      `
Put the command after --. Every task flag of tasks run (-e, --cwd, --cpu, --mem, -l,
--priority, --user, --max-pids, --retries, --spread/--binpack, --schedule-timeout, --timeout, --shell)
describes the task each run submits.

Times: the leading management node's wall clock, in --time-zone. A time that a
daylight-saving change skips runs at the first instant after the gap; a time it
repeats runs once. Each time makes at most one task (also across restarts and
failovers); its tasks carry the schedule's name (tasks show: Schedule).

--overlap: skip (default) records the run skipped while the previous one has not
ended; replace cancels the previous one, then runs; allow runs both.

Examples:
  schedctl schedules create backup --cron "0 3 * * *" --time-zone Europe/Berlin -- /usr/local/bin/backup.sh
  schedctl schedules create poll --cron "*/15 * * * *" --overlap replace --timeout 10m -- ./poll
  schedctl schedules create report --cron "0 9 * * 1" --starting-deadline 1h --shell -- './report > /tmp/r.txt'`,
    )
    .action(async (name: string, argv: string[], opts: CreateOptions) => (await import('./schedules-create.js')).schedulesCreate(ctx, name, argv, opts));
}
