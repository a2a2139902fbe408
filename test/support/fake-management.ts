// A real gRPC server playing the management node to schedctl, with tasks a
// test sets by hand: WatchTasks streams their changes as set() makes them,
// and every request is recorded. Methods a test needs to script otherwise
// are replaced through `override`.
import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import type { GenService } from '@bufbuild/protobuf/codegenv2';
import { NotFoundError, toStatus } from '../../common/errors.js';
import { serviceDefinition, type ServiceHandlers } from '../../common/grpc-service.js';
import {
  CancelTaskResponseSchema,
  GetTaskResponseSchema,
  ListTasksResponseSchema,
  ManagementService,
  RunTaskResponseSchema,
  WatchTasksResponseSchema,
  type CancelTaskRequest,
  type ListTasksRequest,
  type RunTaskRequest,
  type WatchTasksRequest,
} from '../../proto/gen/schedapi/v1/management_pb.js';
import { TaskSchema, TaskState, type Task } from '../../proto/gen/schedapi/v1/types_pb.js';

type MethodsOf<S> = S extends GenService<infer M> ? M : never;
export type Handlers = ServiceHandlers<MethodsOf<typeof ManagementService>>;
type WatchCall = grpc.ServerWritableStream<WatchTasksRequest, unknown>;

/** A task id as the manager makes them (a UUID; schedctl needs nothing more of it). */
export const taskId = (): string => randomUUID();

export class FakeManagement {
  readonly server = new grpc.Server();
  address = '';
  tasks = new Map<string, Task>();
  revision = 100n;
  runs: RunTaskRequest[] = [];
  cancels: CancelTaskRequest[] = [];
  lists: ListTasksRequest[] = [];
  watches: WatchTasksRequest[] = [];
  gets: string[] = [];
  /** Fails the next WatchTasks calls with this error (one per call), before sending anything. */
  watchFailures: Array<Partial<grpc.StatusObject>> = [];
  private readonly open = new Set<{ ids: Set<string>; call: WatchCall }>();

  constructor(private readonly override: Partial<Handlers> = {}) {}

  /** Adds or changes a task; open watches of it hear the change. */
  set(init: MessageInitShape<typeof TaskSchema> & { id: string }): Task {
    const task = create(TaskSchema, { ...this.tasks.get(init.id), ...init } as MessageInitShape<typeof TaskSchema>);
    this.tasks.set(task.id, task);
    this.revision++;
    for (const w of this.open) this.send(w, task);
    return task;
  }

  /** How many WatchTasks streams are open now. */
  get watching(): number {
    return this.open.size;
  }

  private send(w: { ids: Set<string>; call: WatchCall }, task: Task): void {
    if (!w.ids.has(task.id)) return;
    w.call.write(create(WatchTasksResponseSchema, { task }));
    if (task.state === TaskState.DONE || task.state === TaskState.DEAD) w.ids.delete(task.id);
    if (w.ids.size === 0) {
      this.open.delete(w);
      w.call.end();
    }
  }

  /** A reference as the manager resolves it: the id, or its last 8 characters. */
  find(ref: string): Task | undefined {
    return this.tasks.get(ref) ?? [...this.tasks.values()].find((t) => ref.length >= 8 && t.id.endsWith(ref));
  }

  async start(): Promise<void> {
    const handlers: Partial<Handlers> = {
      runTask: (call, cb) => {
        this.runs.push(call.request);
        const count = call.request.count || 1;
        const groupId = count > 1 ? taskId() : '';
        const tasks = Array.from({ length: count }, () => this.set({ id: taskId(), spec: call.request.spec, state: TaskState.PENDING, groupId }));
        cb(null, create(RunTaskResponseSchema, { task: tasks[0], tasks: count > 1 ? tasks : [], groupId }));
      },
      getTask: (call, cb) => {
        this.gets.push(call.request.id);
        const task = this.find(call.request.id);
        if (!task) return cb(toStatus(new NotFoundError('task', call.request.id)));
        cb(null, create(GetTaskResponseSchema, { task }));
      },
      listTasks: (call, cb) => {
        const r = call.request;
        this.lists.push(r);
        const all = [...this.tasks.values()]
          .filter((t) => (!r.groupId || t.groupId === r.groupId) && (!r.state || t.state === r.state) && (!r.workerId || t.workerId === r.workerId))
          .sort((a, b) => (a.id < b.id ? -1 : 1))
          .filter((t) => t.id > r.pageToken);
        const page = all.slice(0, r.limit || 100);
        const more = all.length > page.length;
        cb(null, create(ListTasksResponseSchema, { tasks: page, nextPageToken: more ? page.at(-1)!.id : '', total: all.length, revision: this.revision }));
      },
      cancelTask: (call, cb) => {
        this.cancels.push(call.request);
        const res = create(CancelTaskResponseSchema);
        for (const ref of call.request.ids) {
          const t = this.find(ref);
          if (!t) res.errors.push({ $typeName: 'schedapi.v1.IdError', id: ref, message: `task ${JSON.stringify(ref)} not found` });
          else if (t.state === TaskState.PENDING) res.tasks.push(this.set({ id: t.id, state: TaskState.DEAD, deadReason: 'cancelled' }));
          else res.tasks.push(t);
        }
        cb(null, res);
      },
      watchTasks: (call) => {
        this.watches.push(call.request);
        const failure = this.watchFailures.shift();
        if (failure) {
          call.emit('error', failure);
          return;
        }
        const w = { ids: new Set(call.request.ids), call: call as WatchCall };
        this.open.add(w);
        call.on('cancelled', () => this.open.delete(w));
        for (const id of call.request.ids) {
          const t = this.tasks.get(id);
          if (t) this.send(w, t);
        }
      },
      listWorkers: (_call, cb) => cb({ code: grpc.status.UNIMPLEMENTED }),
      getWorker: (_call, cb) => cb({ code: grpc.status.UNIMPLEMENTED }),
      drainWorker: (_call, cb) => cb({ code: grpc.status.UNIMPLEMENTED }),
      removeWorker: (_call, cb) => cb({ code: grpc.status.UNIMPLEMENTED }),
      watchEvents: (call) => call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'no events here' }),
      taskLogs: (call) => call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'no logs here' }),
      status: (_call, cb) => cb({ code: grpc.status.UNIMPLEMENTED }),
      ...this.override,
    };
    this.server.addService(serviceDefinition(ManagementService), handlers as unknown as grpc.UntypedServiceImplementation);
    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    this.address = `127.0.0.1:${port}`;
  }

  stop(): void {
    for (const w of this.open) w.call.end();
    this.open.clear();
    this.server.forceShutdown();
  }
}

/** Runs schedctl in this process against `address`; its output captured. */
export async function runSchedctl(address: string, args: string[]): Promise<{ code: number; out: string; err: string }> {
  const { runCli } = await import('../../schedctl/src/cli.js');
  let out = '';
  let err = '';
  const code = await runCli(['--manager', address, ...args], { out: (s) => void (out += s), err: (s) => void (err += s), isTTY: false, env: {} });
  return { code, out, err };
}
