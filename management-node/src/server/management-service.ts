// ManagementService handlers: thin; validation and state live in the cluster.
import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import {
  CancelTaskResponseSchema,
  DrainWorkerResponseSchema,
  GetTaskResponseSchema,
  GetWorkerResponseSchema,
  ListTasksResponseSchema,
  ListWorkersResponseSchema,
  RemoveWorkerResponseSchema,
  RunTaskResponseSchema,
  StatusResponseSchema,
  TaskLogsResponseSchema,
  WatchTasksResponseSchema,
  type ManagementService,
} from '../../../proto/gen/schedapi/v1/management_pb.js';
import { TaskSpecSchema, type Task } from '../../../proto/gen/schedapi/v1/types_pb.js';
import type { ServiceHandlers } from '../../../common/grpc-service.js';
import { InvalidArgumentError, NotFoundError, ResourceExhaustedError, toStatus } from '../../../common/errors.js';
import { VERSION } from '../../../common/version.js';
import type { Cluster } from '../cluster.js';
import { isTerminal } from '../task-lifecycle.js';
import { streamEnd } from './stream-end.js';
import { listPage, MAX_PAGE } from '../listing.js';
import { watchEvents } from './events-service.js';
import { updateHandlers } from './update-service.js';
import { scheduleHandlers } from './schedules-service.js';

const MAX_WATCHED = 1000;
/** Ids one CancelTask may name (a whole `tasks run --count` group). */
const MAX_CANCELLED = 10_000;
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
      // Each id on its own: the ones naming a task are cancelled, the others come back in errors.
      if (req.ids.length === 0) throw new InvalidArgumentError('ids', 'name at least one task');
      if (req.ids.length > MAX_CANCELLED) throw new InvalidArgumentError('ids', `at most ${MAX_CANCELLED} tasks per request`);
      const { tasks, errors } = cluster.ids.tasksOf([...new Set(req.ids)]);
      const cancelled = tasks.length > 0 ? await cluster.cancel(tasks.map((t) => t.id), req.graceMs) : [];
      return create(CancelTaskResponseSchema, { tasks: cancelled, errors });
    }),
    getTask: unary(async (req) => create(GetTaskResponseSchema, { task: await cluster.committed(cluster.ids.task(req.id).id) })),
    listTasks: unary(async (req) => {
      // Read first: every change the listing may not show is stored after it, so WatchEvents
      // from here replays it (records are whole, so replaying one the listing shows is harmless).
      const revision = cluster.events.latestRevision();
      const filter = {
        state: req.state,
        outcome: req.outcome,
        workerId: req.workerId ? cluster.ids.workerFilter(req.workerId) : '',
        groupId: req.groupId ? cluster.ids.group(req.groupId) : '',
        schedule: req.schedule,
      };
      const page = listPage(cluster.tasks, filter, req);
      // What the store holds: a task whose write is in flight is answered once it lands.
      const settled = await Promise.all(page.tasks.map((t) => cluster.committed(t.id).catch(() => cluster.view(t))));
      return create(ListTasksResponseSchema, { tasks: settled, nextPageToken: page.nextPageToken, total: page.total, revision });
    }),
    watchTasks: (call) => {
      const unsubscribe: Array<() => void> = [];
      const stop = () => unsubscribe.splice(0).forEach((u) => u());
      try {
        if (call.request.ids.length === 0) throw new InvalidArgumentError('ids', 'name at least one task');
        if (call.request.ids.length > MAX_WATCHED) throw new InvalidArgumentError('ids', `at most ${MAX_WATCHED} tasks per watch`);
        const ids = [...new Set(call.request.ids.map((ref, i) => cluster.ids.task(ref, `ids[${i}]`).id))];
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
      const stream = streamEnd(call);
      const end = stream.end;
      try {
        const { id, stderr, tailLines, follow } = call.request;
        stream.stop = cluster.readLogs(cluster.ids.task(id).id, { stderr, tailLines, follow }, {
          data: (data) => {
            if (stream.ended || call.cancelled) return;
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
      call.on('close', () => stream.stop());
    },
    drainWorker: unary(async (req) =>
      create(DrainWorkerResponseSchema, { worker: cluster.workerView(await cluster.drain(cluster.ids.worker(req.id).id, req.drain, req.deadlineMs)) }),
    ),
    removeWorker: unary(async (req) => create(RemoveWorkerResponseSchema, { worker: await cluster.removeWorker(cluster.ids.worker(req.id).id) })),
    watchEvents: watchEvents(cluster.events, (ref) => cluster.ids.group(ref)),
    ...updateHandlers(cluster, unary),
    ...scheduleHandlers(cluster, unary),
    listWorkers: unary((req) => {
      const limit = req.limit === 0 ? MAX_PAGE : Math.min(req.limit, MAX_PAGE);
      const ids = [...cluster.workers.keys()].filter((id) => id > req.pageToken).sort();
      const page = ids.slice(0, limit);
      return create(ListWorkersResponseSchema, {
        workers: page.map((id) => cluster.workerView(cluster.getWorker(id))),
        nextPageToken: ids.length > limit ? page[page.length - 1]! : '',
      });
    }),
    getWorker: unary((req) => create(GetWorkerResponseSchema, { worker: cluster.workerView(cluster.ids.worker(req.id)) })),
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
