// schedctl tasks run -f FILE (and go-schedule's spelling, tasks schedule -f FILE):
// one RunTask per entry of the file (batch-file.ts), each with its own
// idempotency key made from the run's key and the entry's index, so a rerun
// with --idempotency-key K (or a retry inside this one) creates nothing twice.
import { toJson } from '@bufbuild/protobuf';
import { stringify } from 'yaml';
import { RunTaskResponseSchema, type RunTaskResponse } from '../../../proto/gen/schedapi/v1/management_pb.js';
import type { Task } from '../../../proto/gen/schedapi/v1/types_pb.js';
import { entryKey, readBatchFile, type BatchEntry } from '../batch-file.js';
import { startProgress } from '../progress.js';
import { newIdempotencyKey } from '../retry.js';
import type { Ctx } from './context.js';
import { specFromOptions, submit, type RunOptions } from './tasks-run.js';
import { waitAndReport } from './tasks-wait.js';

/** RunTask calls in flight at once (each may retry on its own). */
const SUBMIT_PARALLEL = 8;

/** Flags of tasks run that an entry may also set: given on the command line, they are every entry's default. */
const SPEC_FLAGS = ['env', 'cwd', 'cpu', 'mem', 'label', 'priority', 'user', 'maxPids', 'retries', 'spread', 'binpack', 'scheduleTimeout', 'timeout', 'shell', 'count', 'maxParallel', 'after', 'afterAny', 'afterFailed', 'at', 'in'] as const;

/** The entry with the command line's flags under it: the entry's own fields win (env and labels key by key). */
export function withDefaults(entry: BatchEntry, flags: Partial<RunOptions>): BatchEntry & { count: number } {
  const merged: BatchEntry = { ...flags, ...entry };
  if (flags.env && entry.env) merged.env = { ...flags.env, ...entry.env };
  if (flags.label && entry.label) merged.label = { ...flags.label, ...entry.label };
  // A strategy in the entry replaces the flag's (spread and binpack exclude each other).
  if (entry.spread || entry.binpack) {
    merged.spread = entry.spread ?? false;
    merged.binpack = entry.binpack ?? false;
  }
  return { ...merged, count: merged.count ?? 1 };
}

/** `schedctl tasks run -f FILE`; `given(flag)` says whether the flag was on the command line. */
export async function tasksRunFile(ctx: Ctx, file: string, opts: RunOptions, given: (flag: string) => boolean): Promise<void> {
  const flags: Partial<RunOptions> = {};
  for (const f of SPEC_FLAGS) if (given(f)) Object.assign(flags, { [f]: opts[f] });
  const entries = readBatchFile(file).map((e) => withDefaults(e, flags));
  const name = file === '-' ? 'stdin' : file;
  const runKey = opts.idempotencyKey ?? newIdempotencyKey();
  ctx.debug(`idempotency key of the run ${runKey} (entry i: ${entryKey(runKey, 0).slice(0, -1)}i)`);
  const { output } = ctx.settings();
  // Tables (and -o name) are the ids alone; json and yaml print the responses.
  const asIds = output !== 'json' && output !== 'yaml';

  const responses: Array<RunTaskResponse | undefined> = new Array<RunTaskResponse | undefined>(entries.length);
  const bar = startProgress(ctx.io, entries.length, 'submitting');
  let done = 0;
  let failure: { index: number; err: unknown } | undefined;
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < entries.length && !failure; i = next++) {
      const e = entries[i]!;
      try {
        responses[i] = await submit(ctx, { spec: specFromOptions(e.argv, e), count: e.count, idempotencyKey: entryKey(runKey, i) });
      } catch (err) {
        failure ??= { index: i, err };
        return;
      }
      bar.update(++done, '');
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(SUBMIT_PARALLEL, entries.length) }, worker));
  } finally {
    bar.stop();
  }

  const tasksOf = (r: RunTaskResponse): Task[] => (r.tasks.length > 0 ? r.tasks : r.task ? [r.task] : []);
  const created = responses.filter((r): r is RunTaskResponse => r !== undefined);
  const print = (list: RunTaskResponse[]): void => {
    if (asIds) ctx.io.out(list.flatMap(tasksOf).map((t) => `${t.id}\n`).join(''));
    else printResponses(ctx, list);
  };
  if (failure) {
    // What was created is printed (scripts may want it); the rest is named for the rerun.
    print(created);
    const why = failure.err instanceof Error ? failure.err.message : String(failure.err);
    ctx.io.err(
      `schedctl: ${name}: entry ${failure.index + 1}: ${why}\n` +
        `schedctl: ${created.length} of ${entries.length} entries were submitted; rerun with --idempotency-key ${runKey} to submit only the rest\n`,
    );
    ctx.exit(1);
    return;
  }
  if (asIds || !opts.wait) print(created);
  if (!opts.wait) return;

  const groups = new Map<string, string>();
  for (const r of created) if (r.groupId) for (const t of tasksOf(r)) groups.set(t.id, r.groupId);
  const finals = await waitAndReport(ctx, { ids: created.flatMap(tasksOf).map((t) => t.id), groups });
  if (!finals || asIds) return;
  const byId = new Map(finals.map((t) => [t.id, t]));
  for (const r of created) {
    if (r.task) r.task = byId.get(r.task.id) ?? r.task;
    r.tasks = r.tasks.map((t) => byId.get(t.id) ?? t);
  }
  printResponses(ctx, created);
}

/** -o json: the responses as one JSON list; -o yaml: as one YAML list. */
function printResponses(ctx: Ctx, list: RunTaskResponse[]): void {
  const values = list.map((r) => toJson(RunTaskResponseSchema, r, { alwaysEmitImplicit: true }));
  if (ctx.settings().output === 'json') {
    ctx.io.out(`${JSON.stringify(values, null, 2)}\n`);
    return;
  }
  ctx.io.out(stringify(values));
}
