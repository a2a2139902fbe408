// One request per worker named (drain, undrain, rm take many ids): each id's
// own refusal (no such worker, ambiguous, still connected) is one line on
// stderr and exit status 1, and the others go on; a failure of the management
// node itself (unreachable, not answering) fails the command as usual.
import { create } from '@bufbuild/protobuf';
import { status, type ServiceError } from '@grpc/grpc-js';
import { ListWorkersResponseSchema } from '../../../proto/gen/schedapi/v1/management_pb.js';
import type { Worker } from '../../../proto/gen/schedapi/v1/types_pb.js';
import { describeRpcError } from '../../../common/errors.js';
import { workerName, workerStateName } from '../format.js';
import { view } from '../printers/view.js';
import type { Ctx } from './context.js';
import { shortWorkerId } from './tasks-table.js';

/** Requests under way at once: a long list of ids must not open thousands of calls. */
const PARALLEL = 16;

/** Codes that answer for the one id (the request was fine, that worker is not): the others go on. */
const PER_ID = new Set<number>([status.NOT_FOUND, status.INVALID_ARGUMENT, status.FAILED_PRECONDITION, status.ALREADY_EXISTS, status.PERMISSION_DENIED]);

/** Calls `call` for each distinct id, at most PARALLEL at once; the workers it answered with, in the order given. */
export async function eachWorker(ctx: Ctx, verb: string, ids: readonly string[], call: (id: string) => Promise<Worker | undefined>): Promise<Worker[]> {
  const unique = [...new Set(ids)];
  const results = new Array<Worker | undefined>(unique.length);
  let next = 0;
  let failed = false;
  const lane = async (): Promise<void> => {
    while (next < unique.length) {
      const i = next++;
      const id = unique[i]!;
      try {
        results[i] = await call(id);
        if (!results[i]) throw new Error(`the management node answered with no worker`);
      } catch (err) {
        const code = (err as Partial<ServiceError>).code;
        if (code === undefined || !PER_ID.has(code)) throw err;
        ctx.io.err(`schedctl: cannot ${verb} ${id}: ${describeRpcError(err, ctx.settings().manager)}\n`);
        failed = true;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, unique.length) }, lane));
  if (failed) ctx.exit(1);
  return results.filter((w): w is Worker => w !== undefined);
}

/** The workers a command changed: a table, or under -o json/yaml {workers: [...]}. */
export function printWorkers(ctx: Ctx, workers: Worker[], extra?: { head: string; cell: (w: Worker) => string }): void {
  ctx.print(
    view(
      ListWorkersResponseSchema,
      create(ListWorkersResponseSchema, { workers }),
      (wide) => ({
        kind: 'rows',
        head: ['ID', 'NAME', 'STATE', 'TASKS', ...(extra ? [extra.head] : [])],
        rows: workers.map((w) => [wide ? w.id : shortWorkerId(w.id), workerName(w), workerStateName(w), String(w.runningTasks), ...(extra ? [extra.cell(w)] : [])]),
      }),
      { omit: ['nextPageToken'] },
    ),
  );
}
