// RemoveWorker and drain deadlines, over a real gRPC socket to a cluster on a real embedded
// store; workers are FakeLinks, so what the manager tells them is recorded and their reports
// are played by hand.
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import { pino } from 'pino';
import { TaskState } from '../../proto/gen/schedapi/v1/types_pb.js';
import { FinishedSchema } from '../../proto/gen/schedapi/v1/worker_pb.js';
import { Cluster } from '../../management-node/src/cluster.js';
import { createGroupCommitter } from '../../management-node/src/store/group-commit.js';
import { decodeTask, decodeWorker, taskKey, workerKey } from '../../management-node/src/store/records.js';
import { FakeLink } from '../support/fake-link.js';
import { helloOf, rpcError, startManagerRpc, type ManagerRpc } from '../support/manager-rpc.js';
import { until } from '../support/until.js';

const GRACE = 10_000;

describe('cluster: removing workers and drain deadlines', function () {
  this.timeout(20_000);
  let m: ManagerRpc;
  const storedTask = async (id: string) => decodeTask((await m.store.get(taskKey(id)))!);
  const storedWorker = async (id: string) => {
    const v = await m.store.get(workerKey(id));
    return v && decodeWorker(v);
  };
  /** Submits a task and has worker `workerId` (on link) accept it; returns its id. */
  const running = async (link: FakeLink, workerId: string, retries = 0, constraints: Record<string, string> = {}) => {
    const id = (await m.client.runTask({ spec: { argv: ['sleep', '100'], retries, constraints } })).task!.id;
    await until('offered', () => link.offered().includes(id));
    m.cluster.accepted(workerId, { taskId: id, attempt: m.cluster.getTask(id).attempt } as never);
    expect(m.cluster.getTask(id).state).to.equal(TaskState.SCHEDULED);
    return id;
  };
  /** Moves the clock; the workers named answer their pings meanwhile, so they stay connected. */
  const advance = (ms: number, ...alive: string[]) => {
    m.clock.now += ms;
    for (const w of alive) m.cluster.pong(w);
  };
  const cancels = (link: FakeLink) => link.of('cancelTask').map((c) => `${c.value.task?.taskId}.${c.value.task?.attempt}:${c.value.reason}`);

  beforeEach(async () => {
    m = await startManagerRpc({ reconnectGraceMs: GRACE });
  });
  afterEach(async () => {
    await m.close();
  });

  it('removes only a disconnected worker with no task placed on it, from memory, store and pending reasons', async () => {
    const link = new FakeLink();
    m.cluster.hello(link, helloOf('w1', { name: 'big', labels: { big: 'yes' } }));
    // A worker too small for what waits: the pending reason counts both workers until w1 goes.
    m.cluster.hello(new FakeLink(), helloOf('w2', { name: 'small' }));
    const id = await running(link, 'w1', 0, { big: 'yes' });
    const waiting = (await m.client.runTask({ spec: { argv: ['x'], constraints: { big: 'yes' }, resources: { millicpu: 1900n } } })).task!.id;

    const connected = await rpcError(m.client.removeWorker({ id: 'big' }));
    expect(connected.code).to.equal(grpc.status.FAILED_PRECONDITION);
    expect(connected.details).to.equal('worker w1 (big) is connected: stop it first (drain it to let its tasks finish)');

    m.cluster.disconnect(link, 'w1', 'test');
    const inGrace = await rpcError(m.client.removeWorker({ id: 'w1' }));
    expect(inGrace.code).to.equal(grpc.status.FAILED_PRECONDITION);
    expect(inGrace.details).to.match(/^worker w1 \(big\) is within its reconnect grace with 1 task\(s\) placed on it/);

    // The grace ends: its task is lost (no retries), and nothing is placed on it any more.
    advance(GRACE + 1, 'w2');
    m.cluster.tick();
    expect(m.cluster.getTask(id)).to.deep.include({ state: TaskState.DEAD, deadReason: 'worker-lost' });
    expect((await m.client.getTask({ id: waiting })).task!.pendingReason).to.match(/^0\/2 workers fit/);
    const removed = await m.client.removeWorker({ id: 'w1' });
    expect(removed.worker).to.deep.include({ id: 'w1', name: 'big' });
    expect(m.cluster.workers.has('w1')).to.equal(false);
    expect(await storedWorker('w1')).to.equal(undefined);
    expect((await m.client.getTask({ id: waiting })).task!.pendingReason).to.match(/^0\/1 workers fit/);
    expect((await rpcError(m.client.getWorker({ id: 'w1' }))).code).to.equal(grpc.status.NOT_FOUND);
  });

  it('the same id connecting after its removal is a new worker', async () => {
    const link = new FakeLink();
    m.cluster.hello(link, helloOf('w1'));
    await m.client.drainWorker({ id: 'w1', drain: true });
    m.cluster.disconnect(link, 'w1', 'test');
    await m.client.removeWorker({ id: 'w1' });
    m.cluster.hello(new FakeLink(), helloOf('w1'));
    expect(m.cluster.workers.get('w1')!.draining).to.equal(false);
  });

  it('past a drain deadline running tasks are cancelled, then placed again with a retry used or dead drained', async () => {
    const link = new FakeLink();
    m.cluster.hello(link, helloOf('w1'));
    const retried = await running(link, 'w1', 1);
    const once = await running(link, 'w1', 0);
    const t0 = m.clock.now;
    const drained = await m.client.drainWorker({ id: 'w1', drain: true, deadlineMs: 5000 });
    expect(drained.worker!.drainDeadlineUnixMs).to.equal(BigInt(t0 + 5000));
    expect((await storedWorker('w1'))!.drainDeadlineUnixMs).to.equal(BigInt(t0 + 5000));
    const other = new FakeLink();
    m.cluster.hello(other, helloOf('w2'));

    advance(4999, 'w1', 'w2');
    m.cluster.tick();
    expect(cancels(link)).to.deep.equal([]);
    advance(1, 'w1', 'w2');
    m.cluster.tick();
    m.cluster.tick(); // once per attempt, not per tick
    expect(cancels(link).sort()).to.deep.equal([`${retried}.1:drained`, `${once}.1:drained`].sort());
    // Not placed again while its attempt may still run.
    expect(m.cluster.getTask(retried).state).to.equal(TaskState.SCHEDULED);
    expect(other.offered()).to.deep.equal([]);

    // Killed by the signal, or exiting on it with a code of its own: either way the drain stopped it.
    m.cluster.finished('w1', create(FinishedSchema, { task: { taskId: retried, attempt: 1 }, signal: 'SIGTERM' }));
    m.cluster.finished('w1', create(FinishedSchema, { task: { taskId: once, attempt: 1 }, exitCode: 143 }));
    await until('the retry goes to the other worker', () => other.offered().includes(retried));
    await until('both stored', async () => (await storedTask(once)).state === TaskState.DEAD && (await storedTask(retried)).retriesUsed === 1);
    expect(await storedTask(once)).to.deep.include({ state: TaskState.DEAD, deadReason: 'drained' });
    expect(m.cluster.getTask(retried)).to.deep.include({ state: TaskState.PENDING, retriesUsed: 1, attempt: 2, workerId: 'w2' });
    m.cluster.tick(); // writes the new offer, which the acknowledgement waits for
    await until('both results acknowledged once stored', () => link.of('finishedAck').length === 2);
  });

  it('a task that succeeded before the drain stopped it keeps its result; undrain clears the deadline', async () => {
    const link = new FakeLink();
    m.cluster.hello(link, helloOf('w1'));
    const id = await running(link, 'w1', 1);
    await m.client.drainWorker({ id: 'w1', drain: true, deadlineMs: 1000 });
    m.clock.now += 1000;
    m.cluster.tick();
    m.cluster.finished('w1', create(FinishedSchema, { task: { taskId: id, attempt: 1 }, exitCode: 0 }));
    expect(m.cluster.getTask(id)).to.deep.include({ state: TaskState.DONE, retriesUsed: 0 });

    const again = await m.client.drainWorker({ id: 'w1', drain: false });
    expect(again.worker).to.deep.include({ draining: false, drainDeadlineUnixMs: 0n });
    expect((await storedWorker('w1'))!.drainDeadlineUnixMs).to.equal(0n);
  });

  it('a drain deadline survives a restart: a worker reporting its task afterwards has it stopped', async () => {
    const link = new FakeLink();
    m.cluster.hello(link, helloOf('w1'));
    const id = await running(link, 'w1', 1);
    m.cluster.tick(); // stores the acceptance
    await m.client.drainWorker({ id: 'w1', drain: true, deadlineMs: 1000 });
    await m.committer.flush();

    const log = pino({ level: 'silent' });
    const restarted = new Cluster(createGroupCommitter(m.store, log), { pingIntervalMs: 1000, missedPings: 3, ackTimeoutMs: 500, recoveryGraceMs: 0, reconnectGraceMs: GRACE, now: () => m.clock.now }, log);
    restarted.load([await storedTask(id)], [(await storedWorker('w1'))!]);
    const back = new FakeLink();
    restarted.hello(back, helloOf('w1', { running: [{ taskId: id, attempt: 1 }] }));
    m.clock.now += 1000;
    restarted.tick();
    expect(cancels(back)).to.deep.equal([`${id}.1:drained`]);
    restarted.finished('w1', create(FinishedSchema, { task: { taskId: id, attempt: 1 }, signal: 'SIGKILL' }));
    expect(restarted.getTask(id)).to.deep.include({ state: TaskState.PENDING, retriesUsed: 1 });
  });
});
