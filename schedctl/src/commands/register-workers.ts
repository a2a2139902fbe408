// schedctl workers <cmd>: names, flags and help texts; each action in ./workers-<cmd>.ts.
import type { Command } from 'commander';
import type { Ctx } from './context.js';
import { lazy, lean, once } from './lazy.js';

export function registerWorkers(workers: Command, ctx: Ctx): void {
  registerWorkersLs(workers, ctx);
  registerWorkersShow(workers, ctx);
  registerWorkersDrain(workers, ctx);
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
