// schedctl workers <cmd>: names, flags and help texts; each action in ./workers-<cmd>.ts.
import type { Command } from 'commander';
import { parseDrainDeadline } from '../flags.js';
import type { Ctx } from './context.js';
import { lazy, lean, once } from './lazy.js';

const IDS = 'worker ids, unique prefixes or names (see: schedctl workers ls)';

export function registerWorkers(workers: Command, ctx: Ctx): void {
  registerWorkersLs(workers, ctx);
  registerWorkersShow(workers, ctx);
  registerWorkersDrain(workers, ctx);
  registerWorkersRm(workers, ctx);
}

function registerWorkersDrain(workers: Command, ctx: Ctx): void {
  workers
    .command('drain')
    .description('stops placing new tasks on workers; their running tasks go on (see: schedctl tasks ls --worker ID)')
    .argument('<id...>', IDS)
    .option('--deadline <duration>', "then cancel what still runs, e.g. 30m (each task is placed again if it has retries left, else ends dead: drained)", parseDrainDeadline)
    .option('--wait', 'wait until the workers run nothing, saying on stderr what each still runs')
    .addHelpText(
      'after',
      `
Exit status: 0 when every worker named is draining; 1 if any id named no worker (each
is said on stderr; the others are drained), or the management node fails.

Examples:
  schedctl workers drain build-1 build-2
  schedctl workers drain --deadline 30m --wait build-1 && shutdown -h now`,
    )
    .action(async (ids: string[], opts: { deadline?: number; wait?: boolean }) => (await import('./workers-drain.js')).workersDrain(ctx, true, ids, opts));
  workers
    .command('undrain')
    .description('lets drained workers take new tasks again')
    .argument('<id...>', IDS)
    .action(async (ids: string[]) => (await import('./workers-drain.js')).workersDrain(ctx, false, ids));
}

function registerWorkersRm(workers: Command, ctx: Ctx): void {
  workers
    .command('rm')
    .description('forgets workers that left for good (disconnected ones only; the management node says why it refuses)')
    .argument('<id...>', IDS)
    .action(lazy(ctx, async () => (await import('./workers-rm.js')).workersRm));
}

function registerWorkersLs(workers: Command, ctx: Ctx): void {
  const load = once(async () => (await import('./workers-ls.js')).workersLs);
  const ls = workers
    .command('ls')
    .description('shows all the remote linux machines that were and are connected to the management node')
    .addHelpText(
      'after',
      `
ID is the worker id's first 8 characters and NAME its name (its config's name, by default
its hostname); either goes wherever a worker id does. -o wide shows full ids, ADDRESS,
HOSTNAME, VERSION and LABELS; -o name the full ids alone.`,
    )
    .action(lazy(ctx, load));
  lean.set(ls, load);
}

function registerWorkersShow(workers: Command, ctx: Ctx): void {
  workers
    .command('show')
    .description('shows everything the management node knows about one worker')
    .argument('<id>', 'worker id, unique prefix or name (see: schedctl workers ls)')
    .action(lazy(ctx, async () => (await import('./workers-show.js')).workersShow));
}
