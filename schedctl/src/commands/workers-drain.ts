import { status } from '@grpc/grpc-js';
import type { Worker } from '../../../proto/gen/schedapi/v1/types_pb.js';
import { formatDurationExact } from '../../../common/duration.js';
import { timeFromNow, workerName } from '../format.js';
import type { Ctx } from './context.js';
import { eachWorker, printWorkers } from './workers-each.js';

/** How often --wait asks the management node what the drained workers still run. */
const POLL_MS = 1000;

export interface DrainOptions {
  /** Milliseconds; then the worker's running tasks are cancelled (placed again if they have retries left). */
  deadline?: number;
  wait?: boolean;
}

/**
 * `schedctl workers drain` and `workers undrain` (registered in
 * register-workers.ts): one command with its inverse, for each worker named
 * (id, prefix or name).
 */
export async function workersDrain(ctx: Ctx, drain: boolean, ids: string[], opts: DrainOptions = {}): Promise<void> {
  const client = ctx.client();
  const deadlineMs = drain ? (opts.deadline ?? 0) : 0;
  const workers = await eachWorker(ctx, drain ? 'drain' : 'undrain', ids, async (id) => (await client.drainWorker({ id, drain, deadlineMs }, ctx.unary())).worker);
  const now = Date.now();
  printWorkers(ctx, workers, drain && deadlineMs > 0 ? { head: 'DEADLINE', cell: (w) => timeFromNow(w.drainDeadlineUnixMs, now) } : undefined);
  if (drain && opts.wait && workers.length > 0) await waitDrained(ctx, workers, deadlineMs);
}

/**
 * Until the workers run nothing: a line on stderr whenever what one still runs
 * changes, and once each is empty. A worker that cannot be asked (it was
 * removed meanwhile) counts as empty.
 */
async function waitDrained(ctx: Ctx, workers: Worker[], deadlineMs: number): Promise<void> {
  const client = ctx.client();
  const said = new Map<string, number>();
  const left = new Map(workers.map((w) => [w.id, w]));
  const say = (w: Worker, running: number) => {
    if (said.get(w.id) === running) return;
    said.set(w.id, running);
    ctx.io.err(running === 0 ? `${workerName(w)}: drained, runs nothing\n` : `${workerName(w)}: ${running} task${running === 1 ? '' : 's'} still running\n`);
  };
  if (deadlineMs > 0) ctx.io.err(`waiting for ${left.size} worker${left.size === 1 ? '' : 's'} to finish their tasks (cancelled after ${formatDurationExact(deadlineMs)})\n`);
  for (;;) {
    const answers = await Promise.all(
      [...left.values()].map(async (w) => {
        try {
          return (await client.getWorker({ id: w.id }, ctx.unary())).worker ?? { ...w, runningTasks: 0 };
        } catch (err) {
          if ((err as { code?: number }).code === status.NOT_FOUND) return { ...w, runningTasks: 0 }; // removed meanwhile
          throw err;
        }
      }),
    );
    for (const w of answers) {
      say(w, w.runningTasks);
      if (w.runningTasks === 0) left.delete(w.id);
    }
    if (left.size === 0) return;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
