// Id references in requests (full ids, unique prefixes, a task's short id, a worker's name) and
// worker names, over a real gRPC socket to a cluster on a real embedded store; workers are
// FakeLinks, so what the manager sends them is recorded.
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { WorkerState } from '../../proto/gen/schedapi/v1/types_pb.js';
import type { WatchTasksResponse } from '../../proto/gen/schedapi/v1/management_pb.js';
import { decodeWorker, workerKey } from '../../management-node/src/store/records.js';
import { FakeLink } from '../support/fake-link.js';
import { helloOf, rpcError, startManagerRpc, type ManagerRpc } from '../support/manager-rpc.js';
import { until } from '../support/until.js';

describe('manager: id references and worker names', function () {
  this.timeout(20_000);
  let m: ManagerRpc;
  /** n pending tasks (a label no worker has), one group when n > 1. */
  const burst = async (n: number) => {
    const r = await m.client.runTask({ spec: { argv: ['true'], constraints: { nowhere: 'true' } }, count: n });
    return { ids: (n > 1 ? r.tasks : [r.task!]).map((t) => t.id), groupId: r.groupId };
  };
  const storedWorker = async (id: string) => decodeWorker((await m.store.get(workerKey(id)))!);

  beforeEach(async () => {
    m = await startManagerRpc();
  });
  afterEach(async () => {
    await m.close();
  });

  it('a task is named by its id, any unique prefix or its short id; several matches are refused, listed', async () => {
    const { ids } = await burst(8);
    const id = ids[3]!;
    expect((await m.client.getTask({ id })).task!.id).to.equal(id);
    expect((await m.client.getTask({ id: id.slice(-8) })).task!.id).to.equal(id);
    expect((await m.client.getTask({ id: id.slice(0, 30) })).task!.id).to.equal(id);
    expect((await m.client.getTask({ id: id.toUpperCase().slice(0, 30) })).task!.id).to.equal(id);
    // A burst shares its first characters: a short prefix names all of it.
    const prefix = id.slice(0, 6);
    const ambiguous = await rpcError(m.client.getTask({ id: prefix }));
    expect(ambiguous.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(ambiguous.details).to.equal(`ambiguous task id "${prefix}": matches ${ids.slice(0, 5).join(', ')} (and 3 more); give more characters`);
    const none = await rpcError(m.client.getTask({ id: 'ffffffff' }));
    expect(none.code).to.equal(grpc.status.NOT_FOUND);
    expect(none.details).to.equal('task "ffffffff" not found');
    expect((await rpcError(m.client.getTask({ id: '' }))).code).to.equal(grpc.status.INVALID_ARGUMENT);
  });

  it('WatchTasks and TaskLogs take the same references', async () => {
    const link = new FakeLink();
    m.cluster.hello(link, helloOf('w1'));
    const id = (await m.client.runTask({ spec: { argv: ['true'] } })).task!.id;
    await until('offered', () => link.offered().includes(id));
    m.cluster.tick(); // writes the offer, which the watch waits for
    const watch = m.client.watchTasks({ ids: [id.slice(-8)] });
    const seen: WatchTasksResponse[] = [];
    watch.on('data', (r: WatchTasksResponse) => seen.push(r));
    watch.on('error', () => undefined);
    await until('the watch answers with the task', () => seen.some((r) => r.task?.id === id));
    watch.cancel();

    const logs = m.client.taskLogs({ id: id.slice(0, 28) });
    logs.on('error', () => undefined);
    await until('the worker is asked for the log of the full id', () => link.of('readLogs').some((r) => r.value.task?.taskId === id));
    logs.cancel();
  });

  it('a worker is named by its id, its name or a unique id prefix; a taken name gets -2, -3', async () => {
    const links = [new FakeLink(), new FakeLink(), new FakeLink()];
    m.cluster.hello(links[0]!, helloOf('aa11-worker', { name: 'build' }));
    m.cluster.hello(links[1]!, helloOf('aa22-worker', { name: 'build' }));
    m.cluster.hello(links[2]!, helloOf('bb33-worker', { name: 'build' }));
    expect(['aa11-worker', 'aa22-worker', 'bb33-worker'].map((id) => m.cluster.workers.get(id)!.name)).to.deep.equal(['build', 'build-2', 'build-3']);
    await until('names stored', async () => (await m.store.get(workerKey('bb33-worker'))) !== undefined && (await storedWorker('bb33-worker')).name === 'build-3');

    expect((await m.client.getWorker({ id: 'build-2' })).worker!.id).to.equal('aa22-worker');
    expect((await m.client.getWorker({ id: 'bb' })).worker!.name).to.equal('build-3');
    expect((await m.client.getWorker({ id: 'aa11-worker' })).worker!.name).to.equal('build');
    const ambiguous = await rpcError(m.client.getWorker({ id: 'aa' }));
    expect(ambiguous.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(ambiguous.details).to.equal('ambiguous worker id "aa": matches aa11-worker (build), aa22-worker (build-2); give more characters');
    expect((await rpcError(m.client.getWorker({ id: 'zz' }))).code).to.equal(grpc.status.NOT_FOUND);

    const drained = await m.client.drainWorker({ id: 'build-3', drain: true });
    expect(drained.worker).to.deep.include({ id: 'bb33-worker', draining: true });

    // The first one leaves: its name is free for the next to ask, and it gets a suffix when it returns.
    m.cluster.disconnect(links[0]!, 'aa11-worker', 'test');
    const newcomer = new FakeLink();
    m.cluster.hello(newcomer, helloOf('cc44-worker', { name: 'build' }));
    expect(m.cluster.workers.get('cc44-worker')!.name).to.equal('build');
    m.cluster.hello(new FakeLink(), helloOf('aa11-worker', { name: 'build' }));
    expect(m.cluster.workers.get('aa11-worker')!.name).to.equal('build-4');
    // A worker that reconnects gets its name back while it is free.
    m.cluster.disconnect(links[1]!, 'aa22-worker', 'test');
    m.cluster.hello(new FakeLink(), helloOf('aa22-worker', { name: 'build' }));
    expect(m.cluster.workers.get('aa22-worker')!.name).to.equal('build-2');
  });

  it('a worker without a name is named by its hostname; a bad name is refused', async () => {
    m.cluster.hello(new FakeLink(), helloOf('w1', { hardware: { hostname: 'host one' } }));
    expect(m.cluster.workers.get('w1')!.name).to.equal('host-one');
    expect(m.cluster.workers.get('w1')!.state).to.equal(WorkerState.CONNECTED);
    expect(() => m.cluster.checkHello(helloOf('w2', { name: 'a b' }))).to.throw(/hello\.name: must be 1-63/);
    expect(() => m.cluster.checkHello(helloOf('w2', { name: 'x'.repeat(64) }))).to.throw(/hello\.name/);
  });

  it('ListTasks filters take a worker name and a group prefix or short id', async () => {
    const link = new FakeLink();
    m.cluster.hello(link, helloOf('w-0001', { name: 'runner' }));
    const ran = (await m.client.runTask({ spec: { argv: ['true'] } })).task!.id;
    await until('offered', () => link.offered().includes(ran));
    m.cluster.tick(); // writes the offer, which the listing waits for
    const { ids, groupId } = await burst(3);
    await burst(2);
    const byWorker = await m.client.listTasks({ workerId: 'runner' });
    expect(byWorker.tasks.map((t) => t.id)).to.deep.equal([ran]);
    expect((await m.client.listTasks({ workerId: 'w-0' })).total).to.equal(1);
    expect((await m.client.listTasks({ groupId: groupId.slice(-8) })).tasks.map((t) => t.id)).to.deep.equal([...ids].reverse());
    expect((await m.client.listTasks({ groupId: groupId.slice(0, 13) })).total).to.equal(3);
    expect((await rpcError(m.client.listTasks({ groupId: 'nogroup' }))).code).to.equal(grpc.status.NOT_FOUND);
    expect((await rpcError(m.client.listTasks({ workerId: 'nobody' }))).code).to.equal(grpc.status.NOT_FOUND);
  });
});
