import type { Command } from 'commander';
import { join } from 'node:path';
import { createCa, writePemFiles } from '../pki.js';
import type { Ctx } from './context.js';
import { wholeNumber } from './tasks-run.js';

/** --days: a whole number of days, at least 1. */
export const parseDays = (value: string): number => wholeNumber(value, 1, 36_500, 'a whole number of days from 1 to 36500', false);

export function registerTlsCaCreate(ca: Command, ctx: Ctx): void {
  ca.command('create')
    .description('creates the cluster certificate authority: ca.pem and ca-key.pem (keep the key offline)')
    .option('--dir <dir>', 'where to write the files', '.')
    .option('--name <name>', 'the CA\'s common name', 'sched CA')
    .option('--days <n>', 'validity in days', parseDays, 3650)
    .option('--force', 'overwrite existing files')
    .action(async (opts: { dir: string; name: string; days: number; force?: boolean }) => {
      const pem = await createCa(opts.name, opts.days);
      const written = writePemFiles(join(opts.dir, 'ca.pem'), join(opts.dir, 'ca-key.pem'), pem, opts.force ?? false);
      ctx.io.out(`${written.join('\n')}\n`);
    });
}
