// ManagementService handlers: thin; validation and state live in the cluster.
import * as grpc from '@grpc/grpc-js';
import { create, toBinary } from '@bufbuild/protobuf';
import {
  CancelTaskResponseSchema,
  DrainWorkerResponseSchema,
  GetTaskResponseSchema,
  GetWorkerResponseSchema,
  ListTasksResponseSchema,
  ListWorkersResponseSchema,
  RunTaskResponseSchema,
  StatusResponseSchema,
  TaskLogsResponseSchema,
  WatchTasksResponseSchema,
  type ManagementService,
} from '../../../proto/gen/sched/v1/management_pb.js';
import { TaskSchema, TaskSpecSchema, TaskState, type Task } from '../../../proto/gen/sched/v1/types_pb.js';
import type { ServiceHandlers } from '../../../common/grpc-service.js';
import { InvalidArgumentError, NotFoundError, ResourceExhaustedError, toStatus } from '../../../common/errors.js';
import { VERSION } from '../../../common/version.js';
import type { Cluster } from '../cluster.js';
import { isTerminal } from '../task-lifecycle.js';
import { isValidId } from '../worker-input.js';

const DEFAULT_PAGE = 100;
const MAX_PAGE = 1000;
const MAX_WATCHED = 1000;
/** Encoded tasks in one ListTasks page, below gRPC's default 4 MiB receive limit. */
const MAX_PAGE_BYTES = 3 * 1024 * 1024;
/** Log chunks (≤ 64 KiB each, so ≤ 16 MiB) the manager buffers for one slow TaskLogs client before it gives up. */
const MAX_LOG_CHUNKS_BUFFERED = 256;

type Unary<Req, Res> = (req: Req) => Promise<Res> | Res;

function unary<Req, Res>(fn: Unary<Req, Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    Promise.resolve()
      .then(() => fn(call.request))
      .then(
        (res) => callback(null, res),
        (err: unknown) => callback(toStatus(err)),
      );
  };
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

export type ManagementHandlers = ServiceHandlers<(typeof ManagementService)['method']>;

/** What Status says of high availability (see StatusResponse). */
export interface HaStatus {
  role: string;
  leader: string;
  term: bigint;
  managers: string[];
}

/** A follower's Status: who leads, and no counts (it keeps no state). */
export function followerStatus(storeDescription: string, ha: () => HaStatus): ManagementHandlers['status'] {
  return unary(() => create(StatusResponseSchema, { version: VERSION, store: storeDescription, ...ha() }));
}

export function managementHandlers(cluster: Cluster, storeDescription: string, ha?: () => HaStatus): ManagementHandlers {
  return {
    runTask: unary(async (req) => {
      const tasks = await cluster.submit(req.spec ?? create(TaskSpecSchema), req.count || 1, req.idempotencyKey);
      return create(RunTaskResponseSchema, {
        task: tasks[0],
        tasks: tasks.length > 1 ? tasks : [],
        groupId: tasks[0]!.groupId,
      });
    }),
    cancelTask: unary(async (req) => {
      const ids = [...new Set(req.ids)];
      if (ids.length === 0) throw new InvalidArgumentError('ids', 'name at least one task');
      ids.forEach((id, i) => requireId(`ids[${i}]`, id));
      return create(CancelTaskResponseSchema, { tasks: await cluster.cancel(ids, req.graceMs) });
    }),
    getTask: unary(async (req) => create(GetTaskResponseSchema, { task: await cluster.committed(requireId('id', req.id)) })),
    listTasks: unary(async (req) => {
      const limit = req.limit === 0 ? DEFAULT_PAGE : Math.min(req.limit, MAX_PAGE);
      const tasks: Task[] = [];
      let next = '';
      // Ids are UUIDv7 and the map is filled in id order, so iteration order is submission order.
      let bytes = 0;
      for (const t of cluster.tasks.values()) {
        if (req.pageToken && t.id <= req.pageToken) continue;
        if (req.state !== TaskState.UNSPECIFIED && t.state !== req.state) continue;
        if (req.workerId && t.workerId !== req.workerId) continue;
        if (req.groupId && t.groupId !== req.groupId) continue;
        // A page also ends before it outgrows what a client accepts in one message (4 MiB by default).
        const size = tasks.length > 0 ? encodedSize(t) : 0;
        if (tasks.length === limit || bytes + size > MAX_PAGE_BYTES) {
          next = tasks[tasks.length - 1]!.id;
          break;
        }
        bytes += size;
        tasks.push(t);
      }
      // What the store holds: a task whose write is in flight is answered once it lands.
      const settled = await Promise.all(tasks.map((t) => cluster.committed(t.id).catch(() => cluster.view(t))));
      return create(ListTasksResponseSchema, { tasks: settled, nextPageToken: next });
    }),
    watchTasks: (call) => {
      const ids = [...new Set(call.request.ids)];
      const unsubscribe: Array<() => void> = [];
      const stop = () => unsubscribe.splice(0).forEach((u) => u());
      try {
        if (ids.length === 0) throw new InvalidArgumentError('ids', 'name at least one task');
        if (ids.length > MAX_WATCHED) throw new InvalidArgumentError('ids', `at most ${MAX_WATCHED} tasks per watch`);
        const open = new Set(ids);
        const send = (task: Task) => {
          if (call.cancelled || call.destroyed || open.size === 0) return;
          call.write(create(WatchTasksResponseSchema, { task }));
          if (isTerminal(task)) open.delete(task.id);
          if (open.size === 0) {
            stop();
            call.end();
          }
        };
        for (const id of ids) unsubscribe.push(cluster.watch(id, send));
        // The current state once stored; later changes come through the listeners after their commit.
        for (const id of ids) {
          cluster.committed(id).then(send, (err: unknown) => {
            if (err instanceof NotFoundError) return; // removed by retention meanwhile
            if (open.size === 0 || call.cancelled) return;
            open.clear();
            stop();
            call.emit('error', toStatus(err));
          });
        }
      } catch (err) {
        stop();
        call.emit('error', toStatus(err));
        return;
      }
      call.on('cancelled', stop);
      call.on('close', stop);
    },
    taskLogs: (call) => {
      let stop: () => void = () => undefined;
      let ended = false;
      const end = (err?: Error) => {
        if (ended) return;
        ended = true;
        stop();
        if (err) call.emit('error', toStatus(err));
        else call.end();
      };
      try {
        const { id, stderr, tailLines, follow } = call.request;
        stop = cluster.readLogs(requireId('id', id), { stderr, tailLines, follow }, {
          data: (data) => {
            if (ended || call.cancelled) return;
            // The worker sends as fast as its stream allows; a client that reads slower than that
            // must not make the manager hold a whole log in memory.
            // The stream is in object mode: writableLength counts messages.
            if (call.writableLength > MAX_LOG_CHUNKS_BUFFERED) {
              end(new ResourceExhaustedError(`log stream: the client reads too slowly (${MAX_LOG_CHUNKS_BUFFERED} chunks waiting); retry, or use --tail`));
              return;
            }
            call.write(create(TaskLogsResponseSchema, { data }));
          },
          end,
        });
      } catch (err) {
        end(err as Error);
        return;
      }
      call.on('cancelled', () => end());
      call.on('close', () => stop());
    },
    drainWorker: unary(async (req) =>
      create(DrainWorkerResponseSchema, { worker: cluster.workerView(await cluster.drain(requireId('id', req.id), req.drain)) }),
    ),
    removeWorker: unary(() => {
      throw new Error('RemoveWorker: not implemented yet');
    }),
    watchEvents: (call) => call.emit('error', toStatus(new Error('WatchEvents: not implemented yet'))),
    listWorkers: unary((req) => {
      const limit = req.limit === 0 ? MAX_PAGE : Math.min(req.limit, MAX_PAGE);
      const ids = [...cluster.workers.keys()].filter((id) => id > req.pageToken).sort();
      const page = ids.slice(0, limit);
      return create(ListWorkersResponseSchema, {
        workers: page.map((id) => cluster.workerView(cluster.getWorker(id))),
        nextPageToken: ids.length > limit ? page[page.length - 1]! : '',
      });
    }),
    getWorker: unary((req) => create(GetWorkerResponseSchema, { worker: cluster.workerView(cluster.getWorker(requireId('id', req.id))) })),
    status: unary(() => {
      const c = cluster.counts();
      return create(StatusResponseSchema, {
        version: VERSION,
        store: storeDescription,
        workersConnected: c.workersConnected,
        workersTotal: c.workersTotal,
        tasksByState: c.tasksByState,
        ...ha?.(),
      });
    }),
  };
}

function requireId(field: string, id: string): string {
  if (!id) throw new InvalidArgumentError(field, 'must not be empty');
  if (!isValidId(id)) throw new InvalidArgumentError(field, 'must be 1-128 of [A-Za-z0-9._-], not starting with "."');
  return id;
}
