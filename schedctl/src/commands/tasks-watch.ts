// schedctl tasks ls --watch: the listing, then its changes as WatchEvents
// streams them from the listing's revision (so nothing between the two is
// missed). On a terminal the table is redrawn; otherwise each change is a
// line (events.ts), or with -o json an event object per line.
import { create } from '@bufbuild/protobuf';
import { ListTasksResponseSchema, type WatchEventsResponse } from '../../../proto/gen/schedapi/v1/management_pb.js';
import { outcomeOf } from '../../../common/outcome.js';
import { TaskOutcome, TaskState, type Task } from '../../../proto/gen/schedapi/v1/types_pb.js';
import type { OutcomeName } from '../flags.js';
import { outcomeFromName, taskStateFromName, type TaskStateName } from '../format.js';
import { view } from '../printers/view.js';
import type { Ctx } from './context.js';
import { eventPrinter, followEvents, untilInterrupted } from './events.js';
import { taskRows } from './tasks-ls.js';

/** ListTasks page size (the manager's largest page). */
const PAGE = 1000;
/** Tasks a watch keeps when --limit 0 asks for all: the table is for a screen, and memory stays bounded. */
const MAX_WATCHED = 10_000;
/** Fastest redraw of the table: a burst of changes is one redraw. */
const REDRAW_MS = 250;

/** The filters of tasks ls (tasks-ls.ts hands them over); limit 0 = all. */
export interface WatchListOptions {
  state?: TaskStateName | undefined;
  outcome?: OutcomeName | undefined;
  worker?: string | undefined;
  group?: string | undefined;
  schedule?: string | undefined;
  limit: number;
}

interface Listing {
  tasks: Task[];
  revision: bigint;
}

/** The listing, newest first, and the revision it reflects (the first page's: events after it cover every later page). */
async function list(ctx: Ctx, opts: WatchListOptions, limit: number): Promise<Listing> {
  const state = opts.state ? taskStateFromName(opts.state) : TaskState.UNSPECIFIED;
  const outcome = opts.outcome ? outcomeFromName(opts.outcome) : TaskOutcome.UNSPECIFIED;
  const tasks: Task[] = [];
  let revision: bigint | undefined;
  let pageToken = '';
  do {
    const page = await ctx
      .client()
      .listTasks({ state, outcome, workerId: opts.worker ?? '', groupId: opts.group ?? '', schedule: opts.schedule ?? '', limit: Math.min(PAGE, limit - tasks.length), pageToken }, ctx.unary());
    revision ??= page.revision;
    tasks.push(...page.tasks);
    pageToken = page.nextPageToken;
  } while (pageToken !== '' && tasks.length < limit);
  return { tasks: tasks.slice(0, limit), revision: revision ?? 0n };
}

/** `schedctl tasks ls --watch` (tasks-ls.ts hands over to it). */
export async function tasksWatch(ctx: Ctx, opts: WatchListOptions): Promise<void> {
  const limit = opts.limit === 0 ? MAX_WATCHED : Math.min(opts.limit, MAX_WATCHED);
  const groupFilter = (opts.group ?? '') !== '';
  const state = opts.state ? taskStateFromName(opts.state) : undefined;
  const outcome = opts.outcome ? outcomeFromName(opts.outcome) : undefined;
  // The manager filters the listing; the changes after it are filtered here (the worker by id or its start).
  const matches = (t: Task): boolean =>
    (state === undefined || t.state === state) &&
    (outcome === undefined || outcomeOf(t) === outcome) &&
    (!opts.worker || t.workerId === opts.worker || t.workerId.startsWith(opts.worker)) &&
    (!opts.schedule || t.schedule === opts.schedule);
  const output = ctx.settings().output;
  const redrawing = ctx.io.isTTY && (output === 'table' || output === 'wide');
  const shown = new Map<string, Task>();

  const newestFirst = (): Task[] => [...shown.values()].sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  const printList = (): void => {
    const tasks = newestFirst();
    const now = Date.now();
    ctx.print(view(ListTasksResponseSchema, create(ListTasksResponseSchema, { tasks, total: tasks.length }), (wide) => taskRows(tasks, now, { groupFilter, wide })));
  };
  let revision = 0n;
  let timer: NodeJS.Timeout | undefined;
  const draw = (): void => {
    timer = undefined;
    ctx.io.out('\x1b[H\x1b[2J'); // home, clear the screen: the table is drawn anew
    printList();
    ctx.io.out(`(watching from revision ${revision}; Ctrl-C to stop)\n`);
  };
  const scheduleDraw = (): void => {
    timer ??= setTimeout(draw, REDRAW_MS);
  };
  const load = async (): Promise<bigint> => {
    const listing = await list(ctx, opts, limit);
    shown.clear();
    for (const t of listing.tasks) shown.set(t.id, t);
    revision = listing.revision;
    return listing.revision;
  };

  const from = await load();
  if (redrawing) draw();
  else printList();
  const printEvent = eventPrinter(ctx);
  const onEvent = (ev: WatchEventsResponse): void => {
    if (ev.object.case !== 'task') return;
    const t = ev.object.value;
    const was = shown.has(t.id);
    if (matches(t)) {
      shown.set(t.id, t);
      // Newest first, as many as the listing: the oldest goes.
      if (shown.size > limit) shown.delete(newestFirst().at(-1)!.id);
    } else shown.delete(t.id);
    revision = ev.revision;
    if (redrawing) scheduleDraw();
    else if (was || matches(t)) printEvent(ev);
  };
  try {
    await untilInterrupted(ctx, (signal) =>
      followEvents(ctx, { afterRevision: from, tasks: true, workers: false, groupId: opts.group ?? '' }, onEvent, {
        signal,
        // The changes in the gap are unknown: the listing is taken again, and the watch goes on from it.
        missed: async (after) => {
          ctx.io.err(`schedctl: the management node no longer holds the changes after revision ${after}; listing again\n`);
          const again = await load();
          if (redrawing) scheduleDraw();
          else printList();
          return again;
        },
      }),
    );
  } finally {
    clearTimeout(timer);
  }
}
