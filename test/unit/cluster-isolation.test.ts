// The manager's side of task isolation: a task's user places it only on a worker that allows
// that user (and says so while it waits), what a worker says of its isolation is checked before
// it is kept, and an attempt's OOM kill, peak memory and CPU time are stored with its result.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { pino } from 'pino';
import { TaskSpecSchema, TaskState } from '../../proto/gen/schedapi/v1/types_pb.js';
import { FinishedSchema, HelloSchema } from '../../proto/gen/schedapi/v1/worker_pb.js';
import { Cluster } from '../../management-node/src/cluster.js';
import { createEmbeddedStore } from '../../management-node/src/store/embedded-store.js';
import { createGroupCommitter, type GroupCommitter } from '../../management-node/src/store/group-commit.js';
import { decodeTask, taskKey } from '../../management-node/src/store/records.js';
import type { Store } from '../../management-node/src/store/store.js';
import { FakeLink } from '../support/fake-link.js';
import { until } from '../support/until.js';

const log = pino({ level: 'silent' });

describe('cluster: task isolation', () => {
  let dir: string;
  let store: Store;
  let committer: GroupCommitter;
  let cluster: Cluster;
  const hello = (id: string, isolation?: { runAs?: string; allowedUsers?: string[]; cgroups?: string; limitsNote?: string }) =>
    create(HelloSchema, { workerId: id, capacity: { millicpu: 2000n, memoryBytes: 1n << 30n }, ...(isolation ? { isolation } : {}) });
  const join = (id: string, isolation?: Parameters<typeof hello>[1]) => {
    const link = new FakeLink();
    const h = hello(id, isolation);
    cluster.checkHello(h);
    cluster.hello(link, h);
    return link;
  };

  beforeEach(() => {
    dir = mkdtempSync(joinPath(tmpdir(), 'sched-isolation-'));
    store = createEmbeddedStore(dir);
    committer = createGroupCommitter(store, log);
    cluster = new Cluster(committer, { pingIntervalMs: 1000, missedPings: 3, ackTimeoutMs: 500, recoveryGraceMs: 0 }, log);
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('places a task with --user only on a worker that allows that user, and says why it waits meanwhile', async () => {
    const plain = join('plain');
    const [task] = await cluster.submit(create(TaskSpecSchema, { argv: ['id', '-u'], user: 'builder' }));
    expect(plain.offered()).to.deep.equal([]);
    expect(cluster.view(cluster.getTask(task!.id)).pendingReason).to.equal('0/1 workers fit: 1 user builder not allowed; no connected worker could ever fit it');
    const other = join('other', { allowedUsers: ['nobody'] });
    expect(other.offered()).to.deep.equal([]);
    const allows = join('allows', { allowedUsers: ['nobody', 'builder'] });
    expect(allows.offered()).to.deep.equal([task!.id]);
    // A task without a user goes anywhere; one naming a worker's run_as goes there.
    const [any] = await cluster.submit(create(TaskSpecSchema, { argv: ['true'] }));
    expect(cluster.getTask(any!.id).workerId).to.not.equal('');
    const runs = join('runs-as', { runAs: 'svc' });
    const [asSvc] = await cluster.submit(create(TaskSpecSchema, { argv: ['true'], user: 'svc' }));
    expect(runs.offered()).to.include(asSvc!.id);
  });

  it('refuses a task whose user or max_pids is not valid, naming the field and storing nothing', async () => {
    const bad = (init: Record<string, unknown>) => cluster.submit(create(TaskSpecSchema, { argv: ['true'], ...init })).then(() => '', (e: Error) => e.message);
    expect(await bad({ user: 'root; rm -rf /' })).to.match(/^spec\.user: must be a user name/);
    expect(await bad({ user: 'x'.repeat(40) })).to.match(/^spec\.user: /);
    expect(await bad({ maxPids: 5_000_000 })).to.match(/^spec\.max_pids: must be at most 4194304/);
    expect(await store.range('tasks/')).to.have.length(0);
  });

  it('refuses a Hello whose isolation is out of bounds, naming the field', () => {
    const refused = (isolation: Parameters<typeof hello>[1]) => {
      try {
        cluster.checkHello(hello('w1', isolation));
        return '';
      } catch (err) {
        return (err as Error).message;
      }
    };
    expect(refused({ cgroups: 'v3' })).to.match(/^hello\.isolation\.cgroups: /);
    expect(refused({ runAs: '../etc' })).to.match(/^hello\.isolation\.run_as: /);
    expect(refused({ allowedUsers: ['ok', 'not ok'] })).to.match(/^hello\.isolation\.allowed_users\[1\]: /);
    expect(refused({ allowedUsers: Array.from({ length: 257 }, (_, i) => `u${i}`) })).to.match(/^hello\.isolation\.allowed_users: lists 257/);
    expect(refused({ limitsNote: 'x'.repeat(300) })).to.match(/^hello\.isolation\.limits_note: /);
    expect(refused({ cgroups: 'v1', runAs: 'svc', allowedUsers: ['nobody'] })).to.equal('');
  });

  it('stores an attempt\'s OOM kill, peak memory and CPU time with its result; figures out of range are dropped', async () => {
    const link = join('w1', { cgroups: 'v1' });
    const [a, b] = [(await cluster.submit(create(TaskSpecSchema, { argv: ['eat'] })))[0]!, (await cluster.submit(create(TaskSpecSchema, { argv: ['x'] })))[0]!];
    expect(link.offered()).to.deep.equal([a.id, b.id]);
    cluster.finished('w1', create(FinishedSchema, { task: { taskId: a.id, attempt: 1 }, exitCode: 137, signal: 'SIGKILL', oomKilled: true, peakMemoryBytes: 64n << 20n, cpuTimeUs: 1_500_000n }));
    cluster.finished('w1', create(FinishedSchema, { task: { taskId: b.id, attempt: 1 }, exitCode: 0, peakMemoryBytes: -5n, cpuTimeUs: 1n << 62n }));
    await until('both results acknowledged (stored)', () => link.of('finishedAck').length === 2);
    const stored = decodeTask((await store.get(taskKey(a.id)))!);
    expect(stored).to.deep.include({ state: TaskState.DONE, oomKilled: true, peakMemoryBytes: 64n << 20n, cpuTimeUs: 1_500_000n });
    expect(decodeTask((await store.get(taskKey(b.id)))!)).to.deep.include({ oomKilled: false, peakMemoryBytes: 0n, cpuTimeUs: 0n });
    // The worker's own record keeps what it said of itself (workers show).
    expect(cluster.getWorker('w1').isolation?.cgroups).to.equal('v1');
  });
});
