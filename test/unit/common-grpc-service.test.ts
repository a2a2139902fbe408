// The protobuf-es ↔ grpc-js adapter against a real grpc-js server on loopback.
import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import { expect } from 'chai';
import { NotFoundError, toStatus } from '../../common/errors.js';
import { createServiceClient, serviceDefinition, type ServiceClient, type ServiceHandlers } from '../../common/grpc-service.js';
import {
  GetTaskResponseSchema,
  ManagementService,
  WatchTasksResponseSchema,
  type WatchTasksResponse,
} from '../../proto/gen/schedapi/v1/management_pb.js';
import { TaskSchema, TaskState } from '../../proto/gen/schedapi/v1/types_pb.js';
import { freePort } from '../support/etcd.js';
import { ConnectResponseSchema, WorkerService, type ConnectResponse } from '../../proto/gen/schedapi/v1/worker_pb.js';

type Methods<S> = S extends GenService<infer T extends GenServiceMethods> ? T : never;
type ManagementHandlers = ServiceHandlers<Methods<typeof ManagementService>>;
type WorkerHandlers = ServiceHandlers<Methods<typeof WorkerService>>;

function bind(server: grpc.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port)));
  });
}

function shutdown(server: grpc.Server): Promise<void> {
  return new Promise((resolve) => {
    // Give calls a moment to finish, then cut what is left.
    const timer = setTimeout(() => server.forceShutdown(), 2000);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function rpcError(promise: Promise<unknown>): Promise<grpc.ServiceError> {
  return promise.then(
    () => expect.fail('expected the call to fail'),
    (err: unknown) => err as grpc.ServiceError,
  );
}

function collect<T>(stream: grpc.ClientReadableStream<T>): Promise<{ messages: T[]; error?: grpc.ServiceError }> {
  return new Promise((resolve) => {
    const messages: T[] = [];
    stream.on('data', (m: T) => messages.push(m));
    stream.on('error', (error: grpc.ServiceError) => resolve({ messages, error }));
    stream.on('end', () => resolve({ messages }));
  });
}

describe('common/grpc-service', function () {
  this.timeout(20_000);

  let server: grpc.Server;
  let client: ServiceClient<Methods<typeof ManagementService>>;
  let workerClient: ServiceClient<Methods<typeof WorkerService>>;
  let address: string;
  /** Resolves when the server sees the call for that id cancelled (deadline or client cancel). */
  const cancelled = new Map<string, { promise: Promise<void>; resolve: () => void }>();
  const cancelledOnServer = (id: string): Promise<void> => {
    let entry = cancelled.get(id);
    if (!entry) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      cancelled.set(id, (entry = { promise, resolve }));
    }
    return entry.promise;
  };
  const markCancelled = (id: string): void => {
    void cancelledOnServer(id);
    cancelled.get(id)!.resolve();
  };
  /** A bound on waiting for an event that must come: its expiry means the event never came. */
  const within = <T>(what: string, p: Promise<T>, ms = 10_000): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${what}: did not happen within ${ms}ms`)), ms);
      p.then(
        (v) => (clearTimeout(timer), resolve(v)),
        (e: unknown) => (clearTimeout(timer), reject(e as Error)),
      );
    });

  const management: Partial<ManagementHandlers> = {
    getTask(call, callback) {
      const id = call.request.id;
      if (id === 'missing') return callback(toStatus(new NotFoundError('task', id)));
      if (id === 'boom') return callback(toStatus(new Error('disk on fire')));
      if (id === 'with-metadata') {
        const trailer = new grpc.Metadata();
        trailer.set('x-reason', 'because');
        return callback({ code: grpc.status.FAILED_PRECONDITION, details: 'worker is draining', metadata: trailer });
      }
      if (id === 'slow') {
        // Never answers: only the client's deadline can end this call.
        call.on('cancelled', () => markCancelled(id));
        return;
      }
      callback(
        null,
        create(GetTaskResponseSchema, {
          task: {
            id,
            state: TaskState.DONE,
            spec: { argv: ['/bin/echo', 'hi there', ''], env: { A: '1', 'B=': 'x y' }, cwd: '/tmp' },
            exitCode: -1,
            signal: 'SIGKILL',
            attempt: 3,
            createdUnixMs: 1_700_000_000_123n,
            finishedUnixMs: 9_007_199_254_740_993n, // beyond Number.MAX_SAFE_INTEGER
            stdoutTail: Uint8Array.from([0, 255, 10, 13]),
            pid: 4_294_967_295,
          },
        }),
      );
    },
    watchTasks(call) {
      const ids = call.request.ids;
      if (ids.includes('fail-after-two')) {
        call.write(create(WatchTasksResponseSchema, { task: { id: 'a', state: TaskState.PENDING } }));
        call.write(create(WatchTasksResponseSchema, { task: { id: 'b', state: TaskState.PENDING } }));
        call.emit('error', toStatus(new NotFoundError('task', 'fail-after-two')));
        return;
      }
      if (ids.includes('forever')) {
        call.write(create(WatchTasksResponseSchema, { task: { id: 'forever', state: TaskState.SCHEDULED } }));
        call.on('cancelled', () => markCancelled('forever'));
        return;
      }
      for (const [i, id] of ids.entries()) {
        call.write(create(WatchTasksResponseSchema, { task: { id, state: TaskState.SCHEDULED, attempt: i } }));
      }
      call.end();
    },
  };

  const worker: WorkerHandlers = {
    connect(call) {
      call.on('data', (req: { msg: { case: string | undefined; value?: unknown } }) => {
        if (req.msg.case === 'hello') {
          const hello = req.msg.value as { workerId: string };
          call.write(create(ConnectResponseSchema, { msg: { case: 'welcome', value: { sessionId: `s-${hello.workerId}`, pingIntervalMs: 1000 } } }));
        } else if (req.msg.case === 'pong') {
          const pong = req.msg.value as { seq: bigint };
          call.write(create(ConnectResponseSchema, { msg: { case: 'ping', value: { seq: pong.seq + 1n } } }));
        }
      });
      call.on('end', () => call.end());
    },
  };

  before(async () => {
    server = new grpc.Server();
    server.addService(serviceDefinition(ManagementService), management as unknown as grpc.UntypedServiceImplementation);
    server.addService(serviceDefinition(WorkerService), worker as unknown as grpc.UntypedServiceImplementation);
    const port = await bind(server);
    address = `127.0.0.1:${port}`;
    client = createServiceClient(ManagementService, address, grpc.credentials.createInsecure());
    workerClient = createServiceClient(WorkerService, address, grpc.credentials.createInsecure());
  });

  after(async () => {
    client?.close();
    workerClient?.close();
    if (server) await shutdown(server);
  });

  it('builds a grpc-js definition with the wire paths and stream flags', () => {
    const def = serviceDefinition(ManagementService);
    expect(def['getTask']).to.include({ path: '/schedapi.v1.ManagementService/GetTask', requestStream: false, responseStream: false });
    expect(def['watchTasks']).to.include({ path: '/schedapi.v1.ManagementService/WatchTasks', requestStream: false, responseStream: true });
    expect(Object.keys(def)).to.include.members(['runTask', 'getTask', 'listTasks', 'listWorkers', 'getWorker', 'status']);
    const wdef = serviceDefinition(WorkerService);
    expect(wdef['connect']).to.include({ path: '/schedapi.v1.WorkerService/Connect', requestStream: true, responseStream: true });
  });

  it('serializes to protobuf binary that fromBinary reads back', () => {
    const def = serviceDefinition(ManagementService);
    const m = def['getTask']!;
    const wire = m.requestSerialize({ $typeName: 'schedapi.v1.GetTaskRequest', id: 't-1' });
    expect([...wire]).to.deep.equal([0x0a, 3, 0x74, 0x2d, 0x31]); // field 1, length 3, "t-1"
    expect(m.requestDeserialize(wire)).to.deep.include({ id: 't-1' });
  });

  it('unary: GetTask round-trips every kind of field', async () => {
    const res = await client.getTask({ id: 't-1' });
    const task = res.task!;
    expect(task.$typeName).to.equal(TaskSchema.typeName);
    expect(task.id).to.equal('t-1');
    expect(task.state).to.equal(TaskState.DONE);
    expect(task.spec?.argv).to.deep.equal(['/bin/echo', 'hi there', '']);
    expect(task.spec?.env).to.deep.equal({ A: '1', 'B=': 'x y' });
    expect(task.exitCode).to.equal(-1);
    expect(task.attempt).to.equal(3);
    expect(task.createdUnixMs).to.equal(1_700_000_000_123n);
    expect(task.finishedUnixMs).to.equal(9_007_199_254_740_993n);
    expect(task.startedUnixMs).to.equal(0n);
    expect([...task.stdoutTail]).to.deep.equal([0, 255, 10, 13]);
    expect(task.pid).to.equal(4_294_967_295);
  });

  it('unary: many concurrent calls on one client', async () => {
    const ids = Array.from({ length: 200 }, (_, i) => `t-${i}`);
    const res = await Promise.all(ids.map((id) => client.getTask({ id })));
    expect(res.map((r) => r.task?.id)).to.deep.equal(ids);
  });

  it('unary: an error status passes through with its code and details', async () => {
    const err = await rpcError(client.getTask({ id: 'missing' }));
    expect(err.code).to.equal(grpc.status.NOT_FOUND);
    expect(err.details).to.equal('task "missing" not found');
  });

  it('unary: an unknown error arrives as INTERNAL', async () => {
    const err = await rpcError(client.getTask({ id: 'boom' }));
    expect(err.code).to.equal(grpc.status.INTERNAL);
    expect(err.details).to.equal('internal error: disk on fire');
  });

  it('unary: trailing metadata on an error passes through', async () => {
    const err = await rpcError(client.getTask({ id: 'with-metadata' }));
    expect(err.code).to.equal(grpc.status.FAILED_PRECONDITION);
    expect(err.details).to.equal('worker is draining');
    expect(err.metadata.get('x-reason')).to.deep.equal(['because']);
  });

  it('unary: a method the server does not implement is UNIMPLEMENTED', async () => {
    const err = await rpcError(client.status({}));
    expect(err.code).to.equal(grpc.status.UNIMPLEMENTED);
  });

  it('unary: deadlineMs cancels a slow call with DEADLINE_EXCEEDED', async () => {
    // The handler never answers, so the call can only end by its deadline.
    const err = await within('the deadline to end the call', rpcError(client.getTask({ id: 'slow' }, { deadlineMs: 200 })));
    expect(err.code).to.equal(grpc.status.DEADLINE_EXCEEDED);
    await within('the server to see the call cancelled', cancelledOnServer('slow'));
  });

  it('unary: an unreachable server is UNAVAILABLE', async () => {
    const dead = createServiceClient(ManagementService, `127.0.0.1:${await freePort()}`, grpc.credentials.createInsecure());
    try {
      const err = await rpcError(dead.getTask({ id: 'x' }, { deadlineMs: 5000 }));
      expect(err.code).to.equal(grpc.status.UNAVAILABLE);
    } finally {
      dead.close();
    }
  });

  it('server stream: WatchTasks delivers every message in order, then ends', async () => {
    const { messages, error } = await collect<WatchTasksResponse>(client.watchTasks({ ids: ['x', 'y', 'z'] }));
    expect(error).to.equal(undefined);
    expect(messages.map((m) => [m.task?.id, m.task?.attempt, m.task?.state])).to.deep.equal([
      ['x', 0, TaskState.SCHEDULED],
      ['y', 1, TaskState.SCHEDULED],
      ['z', 2, TaskState.SCHEDULED],
    ]);
  });

  it('server stream: an empty stream just ends', async () => {
    const { messages, error } = await collect<WatchTasksResponse>(client.watchTasks({ ids: [] }));
    expect(error).to.equal(undefined);
    expect(messages).to.deep.equal([]);
  });

  it('server stream: an error after some messages keeps them and passes code and details', async () => {
    const { messages, error } = await collect<WatchTasksResponse>(client.watchTasks({ ids: ['fail-after-two'] }));
    expect(messages.map((m) => m.task?.id)).to.deep.equal(['a', 'b']);
    expect(error?.code).to.equal(grpc.status.NOT_FOUND);
    expect(error?.details).to.equal('task "fail-after-two" not found');
  });

  it('server stream: cancelling on the client reaches the server', async () => {
    const stream = client.watchTasks({ ids: ['forever'] });
    const first = await new Promise<WatchTasksResponse>((resolve) => stream.once('data', resolve));
    expect(first.task?.id).to.equal('forever');
    const done = collect(stream);
    stream.cancel();
    const { error } = await done;
    expect(error?.code).to.equal(grpc.status.CANCELLED);
    await within('the server to see the stream cancelled', cancelledOnServer('forever'));
  });

  it('bidi stream: WorkerService.Connect exchanges oneof envelopes both ways', async () => {
    const stream = workerClient.connect();
    const received: ConnectResponse[] = [];
    const ended = new Promise<void>((resolve, reject) => {
      stream.on('data', (m: ConnectResponse) => {
        received.push(m);
        if (m.msg.case === 'welcome') stream.write(create(WorkerService.method.connect.input, { msg: { case: 'pong', value: { seq: 41n } } }));
        else stream.end();
      });
      stream.on('error', reject);
      stream.on('end', () => resolve());
    });
    stream.write(create(WorkerService.method.connect.input, { msg: { case: 'hello', value: { workerId: 'w1', capacity: { millicpu: 2000n } } } }));
    await ended;
    expect(received.map((m) => m.msg.case)).to.deep.equal(['welcome', 'ping']);
    expect(received[0]!.msg.value).to.deep.include({ sessionId: 's-w1', pingIntervalMs: 1000 });
    expect(received[1]!.msg.value).to.deep.include({ seq: 42n });
  });
});
