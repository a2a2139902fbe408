// schedctl events: names, flags and help text; the action in ./events.ts.
import { InvalidArgumentError, type Command } from 'commander';
import type { Ctx } from './context.js';
import { lazy } from './lazy.js';

/** --after-revision: a store revision, a whole number (uint64). */
export function parseRevision(value: string): bigint {
  if (!/^\d{1,20}$/.test(value.trim()) || BigInt(value.trim()) >= 2n ** 64n) throw new InvalidArgumentError('expected a revision, a whole number');
  return BigInt(value.trim());
}

export function registerEvents(program: Command, ctx: Ctx): void {
  program
    .command('events')
    .description('prints every change of a task or worker as it is stored, one line each, until Ctrl-C')
    .option('--after-revision <n>', 'start after this store revision (an event\'s, or tasks ls -o json\'s) instead of now', parseRevision)
    .option('--tasks', 'only task changes')
    .option('--workers', 'only worker changes')
    .option('--group <id>', 'only the tasks of this group')
    .addHelpText(
      'after',
      `
Each line: time, store revision, kind (task or worker), short id (a task's last 8
characters, a worker's name), state, and what changed (the pending reason, the
worker, the exit code, why it is dead). -o json prints one JSON object per line.

The stream rides out manager restarts and failovers, resuming after the last
revision printed. If the management node no longer holds events that far back,
stderr says that some were missed and the stream goes on from now.

Examples:
  schedctl events
  schedctl events --tasks --group 0190b6b2-...
  schedctl -o json events --after-revision 1234 | jq .task.state`,
    )
    .action(lazy(ctx, async () => (await import('./events.js')).events));
}
