// ListTasks' pages: newest first unless asked for oldest first, filtered, cut to a
// page size and to what a client accepts in one message, with the number of
// matching tasks over every page. Reads only.
//
// A page token is the direction and the last id of the page before: "<id" continues
// newest first (ids below id), ">id" oldest first (ids above id). So a page token
// continues in the order it was made for, whatever oldest_first the next request says.
// A bare id (a token of a manager from before newest-first listings) continues oldest first.
import { toBinary } from '@bufbuild/protobuf';
import { TaskOutcome, TaskSchema, TaskState, type Task } from '../../proto/gen/schedapi/v1/types_pb.js';
import { InvalidArgumentError } from '../../common/errors.js';
import { outcomeOf } from '../../common/outcome.js';
import type { TaskTable } from './task-table.js';
import { isTerminal } from './task-lifecycle.js';
import { isValidId } from './worker-input.js';

export const DEFAULT_PAGE = 100;
export const MAX_PAGE = 1000;
/** Encoded tasks in one page, below gRPC's default 4 MiB receive limit. */
const MAX_PAGE_BYTES = 3 * 1024 * 1024;

export interface TaskFilter {
  state: TaskState;
  /** Exact ids here: references are resolved before (id-resolver.ts). */
  workerId: string;
  groupId: string;
  outcome: TaskOutcome;
  /** Only the runs of this schedule; empty means all. */
  schedule?: string;
}

export interface PageRequest {
  limit: number;
  pageToken: string;
  oldestFirst: boolean;
}

export interface Page {
  tasks: Task[];
  nextPageToken: string;
  /** Tasks matching the filter over every page. */
  total: number;
}

/** Encoded sizes of finished tasks, which never change again: a listing measures each once, not per page. */
const finishedSizes = new WeakMap<Task, number>();
function encodedSize(t: Task): number {
  let size = finishedSizes.get(t);
  if (size !== undefined) return size;
  size = toBinary(TaskSchema, t).byteLength;
  if (isTerminal(t)) finishedSizes.set(t, size);
  return size;
}

/** parseToken reads a page token: the direction it continues in and the id it continues from. */
function parseToken(token: string, oldestFirst: boolean): { oldestFirst: boolean; from: string } {
  if (!token) return { oldestFirst, from: '' };
  const dir = token[0];
  const id = dir === '<' || dir === '>' ? token.slice(1) : token;
  if (!isValidId(id)) throw new InvalidArgumentError('page_token', 'is not a token this manager gave (pass next_page_token as it came)');
  return { oldestFirst: dir !== '<', from: id };
}

function matcher(f: TaskFilter): ((t: Task) => boolean) | undefined {
  const { state, workerId, groupId, outcome, schedule } = f;
  if (state === TaskState.UNSPECIFIED && !workerId && !groupId && outcome === TaskOutcome.UNSPECIFIED && !schedule) return undefined;
  return (t) =>
    (!schedule || t.schedule === schedule) &&
    (state === TaskState.UNSPECIFIED || t.state === state) &&
    (!workerId || t.workerId === workerId) &&
    (!groupId || t.groupId === groupId) &&
    (outcome === TaskOutcome.UNSPECIFIED || outcomeOf(t) === outcome);
}

/** listPage is one page of tasks matching filter, in the order the request (or its token) asks for. */
export function listPage(table: TaskTable, filter: TaskFilter, req: PageRequest): Page {
  const limit = req.limit === 0 ? DEFAULT_PAGE : Math.min(req.limit, MAX_PAGE);
  const { oldestFirst, from } = parseToken(req.pageToken, req.oldestFirst);
  const matches = matcher(filter);
  const tasks: Task[] = [];
  let next = '';
  let bytes = 0;
  for (const t of oldestFirst ? table.ascending(from) : table.descending(from)) {
    if (matches && !matches(t)) continue;
    // A page also ends before it outgrows what a client accepts in one message (4 MiB by default).
    const size = tasks.length > 0 ? encodedSize(t) : 0;
    if (tasks.length === limit || bytes + size > MAX_PAGE_BYTES) {
      next = `${oldestFirst ? '>' : '<'}${tasks[tasks.length - 1]!.id}`;
      break;
    }
    bytes += size;
    tasks.push(t);
  }
  let total = table.size;
  if (matches) {
    total = 0;
    for (const t of table.values()) if (matches(t)) total++;
  }
  return { tasks, nextPageToken: next, total };
}
