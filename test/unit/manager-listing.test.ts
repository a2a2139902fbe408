// ListTasks (newest first, page tokens that keep their direction, totals, the outcome filter)
// and CancelTask's per-id errors, over a real gRPC socket to a cluster on a real embedded store;
// and the task table under them.
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import { TaskOutcome, TaskSchema, TaskState, type Task } from '../../proto/gen/schedapi/v1/types_pb.js';
import { FinishedSchema } from '../../proto/gen/schedapi/v1/worker_pb.js';
import { TaskTable } from '../../management-node/src/task-table.js';
import { decodeTask, taskKey } from '../../management-node/src/store/records.js';
import { FakeLink } from '../support/fake-link.js';
import { helloOf, rpcError, startManagerRpc, type ManagerRpc } from '../support/manager-rpc.js';
import { until } from '../support/until.js';

const pad = (n: number) => String(n).padStart(4, '0');
const tableOf = (ids: string[]) => {
  const t = new TaskTable();
  for (const id of ids) t.set(id, create(TaskSchema, { id }));
  return t;
};
const idsOf = (it: Iterable<Task>) => [...it].map((t) => t.id);

describe('manager: task table', () => {
  it('walks ids in order both ways from any id, skipping deleted ones, wherever they were inserted', () => {
    const t = tableOf(['0003', '0001', '0005', '0002', '0004']);
    expect(idsOf(t.ascending())).to.deep.equal(['0001', '0002', '0003', '0004', '0005']);
    expect(idsOf(t.descending())).to.deep.equal(['0005', '0004', '0003', '0002', '0001']);
    t.delete('0003');
    expect(idsOf(t.ascending('0002'))).to.deep.equal(['0004', '0005']);
    expect(idsOf(t.descending('0004'))).to.deep.equal(['0002', '0001']);
    // From an id that is gone, or was never there: the walk starts where it would have been.
    expect(idsOf(t.descending('0003'))).to.deep.equal(['0002', '0001']);
    expect(idsOf(t.ascending('00025'))).to.deep.equal(['0004', '0005']);
    t.set('0003', create(TaskSchema, { id: '0003' }));
    expect(idsOf(t.ascending())).to.deep.equal(['0001', '0002', '0003', '0004', '0005']);
  });

  it('keeps its order across the compaction of many deleted ids', () => {
    const ids = Array.from({ length: 5000 }, (_, i) => pad(i));
    const t = tableOf(ids);
    for (const id of ids) if (Number(id) % 5 !== 0) t.delete(id);
    const left = ids.filter((id) => Number(id) % 5 === 0);
    expect(t.size).to.equal(left.length);
    expect(idsOf(t.ascending())).to.deep.equal(left);
    expect(idsOf(t.descending('0012'))).to.deep.equal(['0010', '0005', '0000']);
  });

  it('finds the ids with a prefix', () => {
    const t = tableOf(['aa1', 'ab1', 'ab2', 'ab3', 'b']);
    t.delete('ab2');
    expect(t.withPrefix('ab', 10)).to.deep.equal(['ab1', 'ab3']);
    expect(t.withPrefix('ab', 1)).to.deep.equal(['ab1']);
    expect(t.withPrefix('c', 10)).to.deep.equal([]);
  });
});

describe('manager: ListTasks and CancelTask', function () {
  this.timeout(20_000);
  let m: ManagerRpc;
  const pending = async (n: number): Promise<string[]> => {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      // A label no worker has: pending for as long as the test runs.
      const r = await m.client.runTask({ spec: { argv: ['true'], constraints: { nowhere: 'true' } } });
      ids.push(r.task!.id);
      m.clock.now += 1;
    }
    return ids;
  };
  const stored = async (id: string) => decodeTask((await m.store.get(taskKey(id)))!);

  beforeEach(async () => {
    m = await startManagerRpc();
  });
  afterEach(async () => {
    await m.close();
  });

  it('lists newest first by default and oldest first when asked, with the total', async () => {
    const ids = await pending(5);
    const newest = await m.client.listTasks({});
    expect(newest.tasks.map((t) => t.id)).to.deep.equal([...ids].reverse());
    expect(newest.total).to.equal(5);
    const oldest = await m.client.listTasks({ oldestFirst: true });
    expect(oldest.tasks.map((t) => t.id)).to.deep.equal(ids);
  });

  it('says which store revision a listing reflects: a later change has a later one', async () => {
    const [id] = await pending(1);
    const before = await m.client.listTasks({});
    expect(before.revision > 0n).to.equal(true);
    await m.client.cancelTask({ ids: [id!] });
    const after = await m.client.listTasks({});
    expect(after.tasks[0]!.state).to.equal(TaskState.DEAD);
    expect(after.revision > before.revision).to.equal(true);
  });

  it('a page token continues in the order it was made for, whatever the next request says', async () => {
    const ids = await pending(5);
    const first = await m.client.listTasks({ limit: 2 });
    expect(first.tasks.map((t) => t.id)).to.deep.equal([ids[4], ids[3]]);
    expect(first.total).to.equal(5);
    const second = await m.client.listTasks({ limit: 2, pageToken: first.nextPageToken, oldestFirst: true });
    expect(second.tasks.map((t) => t.id)).to.deep.equal([ids[2], ids[1]]);
    const third = await m.client.listTasks({ limit: 2, pageToken: second.nextPageToken });
    expect(third.tasks.map((t) => t.id)).to.deep.equal([ids[0]]);
    expect(third.nextPageToken).to.equal('');

    const up = await m.client.listTasks({ limit: 3, oldestFirst: true });
    expect(up.tasks.map((t) => t.id)).to.deep.equal(ids.slice(0, 3));
    const rest = await m.client.listTasks({ limit: 3, pageToken: up.nextPageToken });
    expect(rest.tasks.map((t) => t.id)).to.deep.equal(ids.slice(3));
    // A token of a manager from before (a bare id) goes on oldest first, as it did.
    const legacy = await m.client.listTasks({ pageToken: ids[2]! });
    expect(legacy.tasks.map((t) => t.id)).to.deep.equal(ids.slice(3));
    expect((await rpcError(m.client.listTasks({ pageToken: '<bad token' }))).code).to.equal(grpc.status.INVALID_ARGUMENT);
  });

  it('total counts the tasks matching the filters over every page; outcome picks ended tasks by how they ended', async () => {
    const link = new FakeLink();
    m.cluster.hello(link, helloOf('w1'));
    const ended: Record<string, string> = {};
    const ends = {
      succeeded: { exitCode: 0 },
      failed: { exitCode: 2 },
      timedOut: { exitCode: 0, signal: 'SIGTERM', timedOut: true },
      startFailed: { exitCode: 127, startFailed: true, error: 'no such file' },
    };
    for (const [name, f] of Object.entries(ends)) {
      const id = (await m.client.runTask({ spec: { argv: ['x'] } })).task!.id;
      await until('offered', () => link.offered().includes(id));
      m.cluster.accepted('w1', { taskId: id, attempt: 1 } as never);
      m.cluster.finished('w1', create(FinishedSchema, { task: { taskId: id, attempt: 1 }, ...f }));
      await until('stored as ended', async () => (await stored(id)).finishedUnixMs > 0n);
      ended[name] = id;
    }
    const [cancelled, ...waiting] = await pending(3);
    await m.client.cancelTask({ ids: [cancelled!] });
    const listed = async (outcome: TaskOutcome) => (await m.client.listTasks({ outcome })).tasks.map((t) => t.id);
    expect(await listed(TaskOutcome.SUCCEEDED)).to.deep.equal([ended['succeeded']]);
    expect(await listed(TaskOutcome.FAILED)).to.deep.equal([ended['startFailed'], ended['failed']]);
    expect(await listed(TaskOutcome.TIMED_OUT)).to.deep.equal([ended['timedOut']]);
    expect(await listed(TaskOutcome.CANCELLED)).to.deep.equal([cancelled]);
    expect(await listed(TaskOutcome.LOST)).to.deep.equal([]);

    const page = await m.client.listTasks({ state: TaskState.PENDING, limit: 1 });
    expect(page.tasks.map((t) => t.id)).to.deep.equal([waiting[1]]);
    expect(page.total).to.equal(2);
    const failed = await m.client.listTasks({ outcome: TaskOutcome.FAILED, limit: 1 });
    expect(failed.total).to.equal(2);
    expect((await m.client.listTasks({ limit: 1 })).total).to.equal(7);
  });

  it('cancels every id that names a task and reports each unknown or ambiguous one', async () => {
    const ids = await pending(4);
    const short = ids[1]!.slice(-8);
    const prefix = ids[2]!.slice(0, 30);
    // The burst's ids share their first characters: 8 of them name all four.
    const burst = ids[0]!.slice(0, 8);
    const r = await m.client.cancelTask({ ids: [ids[0]!, 'nope', short, prefix, burst, ids[0]!] });
    expect(r.tasks.map((t) => t.id)).to.deep.equal([ids[0], ids[1], ids[2]]);
    expect(r.errors.map((e) => e.id)).to.deep.equal(['nope', burst]);
    expect(r.errors[0]!.message).to.equal('task "nope" not found');
    expect(r.errors[1]!.message).to.match(new RegExp(`^ambiguous task id "${burst}": matches ${ids[0]}, .*; give more characters$`));
    for (const id of ids.slice(0, 3)) expect((await stored(id)).deadReason).to.equal('cancelled');
    expect((await stored(ids[3]!)).state).to.equal(TaskState.PENDING);
    // Nothing valid at all: the answer is the errors, not a failed call.
    const none = await m.client.cancelTask({ ids: ['nope'] });
    expect(none.tasks).to.have.length(0);
    expect(none.errors.map((e) => e.id)).to.deep.equal(['nope']);
  });

  it('refuses a cancel naming no task or too many', async () => {
    const empty = await rpcError(m.client.cancelTask({ ids: [] }));
    expect(empty.code).to.equal(grpc.status.INVALID_ARGUMENT);
    const many = await rpcError(m.client.cancelTask({ ids: Array.from({ length: 10_001 }, (_, i) => `t${i}`) }));
    expect(many.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(many.details).to.match(/at most 10000/);
  });
});
