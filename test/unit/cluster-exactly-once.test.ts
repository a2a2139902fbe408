// At most one live attempt of a task, on the cluster state machine with a real
// embedded store: offers only after the write, idempotency keys, withdrawn
// offers, lost and never-started attempts, impostor reports, a stalled manager.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { pino } from 'pino';
import { TaskSpecSchema, TaskState, WorkerState } from '../../proto/gen/schedapi/v1/types_pb.js';
import { FinishedSchema, HelloSchema } from '../../proto/gen/schedapi/v1/worker_pb.js';
import { StoreRefusedError } from '../../common/errors.js';
import { Cluster, type ClusterOptions } from '../../management-node/src/cluster.js';
import { FakeLink } from '../support/fake-link.js';
import { createEmbeddedStore } from '../../management-node/src/store/embedded-store.js';
import { createGroupCommitter } from '../../management-node/src/store/group-commit.js';
import { decodeTask, decodeWorker, TASKS, taskKey, workerKey } from '../../management-node/src/store/records.js';
import type { Store } from '../../management-node/src/store/store.js';
import { until, turns } from '../support/until.js';

const log = pino({ level: 'silent' });


describe('cluster: at most one live attempt', () => {
  let dir: string;
  let store: Store;
  let now: number;
  let cluster: Cluster;
  const spec = (...argv: string[]) => create(TaskSpecSchema, { argv });
  const hello = (id: string, running: Array<{ taskId: string; attempt: number }> = []) =>
    create(HelloSchema, { workerId: id, capacity: { millicpu: 2000n, memoryBytes: 1n << 30n }, running });
  const storedTask = async (id: string) => {
    const v = await store.get(taskKey(id));
    return v && decodeTask(v);
  };
  const ta = (taskId: string, attempt: number) => ({ taskId, attempt }) as never;
  const finished = (taskId: string, attempt: number, more: Record<string, unknown> = {}) =>
    create(FinishedSchema, { task: { taskId, attempt }, ...more });
  const make = (s: Store, more: Partial<ClusterOptions> = {}) =>
    new Cluster(createGroupCommitter(s, log), { pingIntervalMs: 1000, missedPings: 3, ackTimeoutMs: 500, recoveryGraceMs: 0, now: () => now, ...more }, log);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sched-once-'));
    store = createEmbeddedStore(dir);
    now = 1_000_000;
    cluster = make(store);
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('offers a task only once the store holds it', async () => {
    let release: (() => void) | undefined;
    const slow: Store = { ...store, commit: async (ops) => (await new Promise<void>((r) => (release = r)), store.commit(ops)) };
    const c = make(slow);
    const link = new FakeLink();
    c.hello(link, hello('w1'));
    const submitted = c.submit(spec('true'));
    await until('the write reached the store', () => release !== undefined);
    await turns();
    expect(link.offered()).to.deep.equal([]);
    expect(await store.range(TASKS)).to.have.length(0);
    release!();
    const [task] = await submitted;
    expect(decodeTask((await store.get(taskKey(task!.id)))!).state).to.equal(TaskState.PENDING);
    expect(link.offered()).to.deep.equal([task!.id]);
  });

  it('an idempotency key answers every repeat, also concurrent ones, with the same tasks', async () => {
    const link = new FakeLink();
    cluster.hello(link, hello('w1'));
    const answers = await Promise.all(Array.from({ length: 20 }, () => cluster.submit(spec('true'), 3, 'job-7')));
    const ids = answers.map((ts) => ts.map((t) => t.id).join(','));
    expect(new Set(ids).size).to.equal(1);
    expect(await store.range(TASKS)).to.have.length(3);
    expect(cluster.tasks.size).to.equal(3);
    const again = await cluster.submit(spec('true'), 3, 'job-7');
    expect(again.map((t) => t.id).join(',')).to.equal(ids[0]);
    const other = await cluster.submit(spec('true'), 3, 'job-8');
    expect(other.map((t) => t.id)).to.not.include(answers[0]![0]!.id);
  });

  it('refuses a key reused with another count or spec, naming the key', async () => {
    await cluster.submit(spec('true'), 2, 'k1');
    const err1 = await cluster.submit(spec('true'), 3, 'k1').then(() => undefined, (e: Error) => e);
    expect(err1?.message).to.match(/idempotency_key "k1" was used for 2 task\(s\), not 3/);
    const err2 = await cluster.submit(spec('false'), 2, 'k1').then(() => undefined, (e: Error) => e);
    expect(err2?.message).to.match(/different task spec/);
    const err3 = await cluster.submit(spec('true'), 1, 'bad key!').then(() => undefined, (e: Error) => e);
    expect(err3?.message).to.match(/^idempotency_key: /);
  });

  it('after a restart a key still answers with its tasks, and creates those a crash kept from being stored', async () => {
    const tasks = await cluster.submit(spec('true'), 3, 'k');
    await store.commit([{ key: taskKey(tasks[1]!.id), value: null }]); // as if that write never landed
    const restarted = make(store);
    restarted.load((await store.range(TASKS)).map((kv) => decodeTask(kv.value)), []);
    const again = await restarted.submit(spec('true'), 3, 'k');
    expect(again[0]!.id).to.equal(tasks[0]!.id);
    expect(again[2]!.id).to.equal(tasks[2]!.id);
    expect(again[1]!.id).to.not.equal(tasks[1]!.id);
    expect(again[1]!).to.include({ groupId: tasks[0]!.groupId, groupIndex: 1, groupSize: 3, idempotencyKey: 'k' });
    expect(await store.range(TASKS)).to.have.length(3);
  });

  it('a keyed submission whose write fails is kept and retried; a repeat answers once it is stored', async () => {
    let failing = true;
    const flaky: Store = { ...store, commit: (ops) => (failing ? Promise.reject(new Error('store down')) : store.commit(ops)) };
    const c = make(flaky);
    const link = new FakeLink();
    c.hello(link, hello('w1'));
    const err = await c.submit(spec('true'), 1, 'k').then(() => undefined, (e: Error) => e);
    expect(err?.message).to.equal('store down');
    expect(link.offered()).to.deep.equal([]);
    failing = false;
    c.tick();
    await until('stored on the retry, then offered', async () => (await store.range(TASKS)).length === 1 && link.offered().length === 1);
    const [task] = await c.submit(spec('true'), 1, 'k');
    expect(decodeTask((await store.get(taskKey(task!.id)))!).idempotencyKey).to.equal('k');
    expect(link.offered()).to.deep.equal([task!.id]);
  });

  it('a withdrawn offer goes elsewhere only after its worker confirms; a killed late run requeues, a finished one stands', async () => {
    const a = new FakeLink();
    cluster.hello(a, hello('a'));
    const [t1] = await cluster.submit(spec('true'));
    const [t2] = await cluster.submit(spec('true'));
    const b = new FakeLink();
    cluster.hello(b, hello('b'));
    now += 501;
    cluster.tick();
    expect(a.of('cancelTask').map((m) => m.value.task!.taskId).sort()).to.deep.equal([t1!.id, t2!.id].sort());
    expect(b.offered()).to.deep.equal([]); // not while a may run them
    // t1 ran late and was stopped by the withdrawal: it goes to b.
    cluster.accepted('a', ta(t1!.id, 1));
    cluster.finished('a', finished(t1!.id, 1, { signal: 'SIGTERM', exitCode: 143 }));
    await until('offered to b', () => b.offered().length === 1);
    expect(b.offered()).to.deep.equal([t1!.id]);
    expect(t1!.attempt).to.equal(2);
    // t2 ran to its end before the cancel reached it: its result is kept, nothing reruns.
    cluster.finished('a', finished(t2!.id, 1, { exitCode: 0 }));
    expect(t2!.state).to.equal(TaskState.DONE);
    expect(b.offered()).to.deep.equal([t1!.id]);
  });

  it('a worker that answers neither the offer nor its withdrawal is dropped; the task moves only after its grace', async () => {
    const c = make(store, { reconnectGraceMs: 5000 });
    const a = new FakeLink();
    c.hello(a, hello('a'));
    const [task] = await c.submit(spec('true'));
    const b = new FakeLink();
    c.hello(b, hello('b'));
    now += 501;
    c.tick();
    now += 501;
    c.seen('a'); // alive, yet silent about the offer
    c.seen('b');
    c.tick();
    expect(a.closed).to.match(/no answer/);
    expect(b.offered()).to.deep.equal([]);
    now += 5001;
    c.seen('b');
    c.tick();
    expect(b.offered()).to.deep.equal([task!.id]);
  });

  it('a lost attempt is retried per policy, not stored as a result', async () => {
    const link = new FakeLink();
    cluster.hello(link, hello('w1'));
    const [task] = await cluster.submit(create(TaskSpecSchema, { argv: ['sleep', '30'], retries: 1 }));
    cluster.accepted('w1', ta(task!.id, 1));
    cluster.finished('w1', finished(task!.id, 1, { lost: true, error: 'worker restarted; task killed', signal: 'SIGKILL', exitCode: 137 }));
    await until('offered again', () => link.offered().length === 2);
    cluster.accepted('w1', ta(task!.id, 2));
    expect(task!.state).to.equal(TaskState.SCHEDULED); // placed again at once on the same (only) worker
    expect(task!.attempt).to.equal(2);
    expect(task!.retriesUsed).to.equal(1);
    cluster.finished('w1', finished(task!.id, 2, { lost: true, error: 'worker restarted; task killed' }));
    expect(task!.state).to.equal(TaskState.DEAD);
    expect(task!.deadReason).to.match(/^worker-lost/);
    await until('both reports acknowledged', () => link.of('finishedAck').length === 2);
  });

  it('a task that never started is dead start-failed with its exit code, and its times are ordered', async () => {
    const link = new FakeLink();
    cluster.hello(link, hello('w1'));
    const [task] = await cluster.submit(spec('/nonexistent'));
    now += 10;
    cluster.accepted('w1', ta(task!.id, 1));
    // The worker's clock is behind the manager's.
    cluster.finished('w1', finished(task!.id, 1, { startFailed: true, exitCode: 127, error: 'spawn /nonexistent ENOENT', startedUnixMs: BigInt(now - 5000), finishedUnixMs: BigInt(now - 4999) }));
    expect(task).to.include({ state: TaskState.DEAD, deadReason: 'start-failed', exitCode: 127 });
    expect(task!.createdUnixMs <= task!.scheduledUnixMs).to.equal(true);
    expect(task!.scheduledUnixMs <= task!.startedUnixMs).to.equal(true);
    expect(task!.startedUnixMs <= task!.finishedUnixMs).to.equal(true);
  });

  it('a session may report only on attempts offered to it', async () => {
    const real = new FakeLink();
    cluster.hello(real, hello('real'));
    const [running] = await cluster.submit(spec('sleep', '9'));
    cluster.accepted('real', ta(running!.id, 1));
    const imp = new FakeLink();
    cluster.hello(imp, hello('impostor'));
    cluster.finished('impostor', finished(running!.id, 1, { exitCode: 0 }));
    cluster.started('impostor', ta(running!.id, 1), 99, BigInt(now));
    expect(running!).to.include({ state: TaskState.SCHEDULED, workerId: 'real', pid: 0 });
    // Not placed anywhere yet (no room): an impostor cannot claim it with a newer attempt either.
    const [pending] = await cluster.submit(create(TaskSpecSchema, { argv: ['true'], resources: { millicpu: 100_000n, memoryBytes: 1n } }));
    cluster.started('impostor', ta(pending!.id, 5), 99, BigInt(now));
    cluster.finished('impostor', finished(pending!.id, 5, { exitCode: 0 }));
    expect(pending!.state).to.equal(TaskState.PENDING);
  });

  it('a Hello for a live worker id is refused; the live session keeps its tasks unless it fails a ping', async () => {
    const link = new FakeLink();
    cluster.hello(link, hello('w1'));
    const [task] = await cluster.submit(spec('sleep', '9'));
    cluster.accepted('w1', ta(task!.id, 1));
    expect(() => cluster.checkHello(hello('w1'))).to.throw(/already connected/);
    expect(link.of('ping')).to.have.length(1); // the probe
    now += 500;
    cluster.seen('w1'); // it answered: it stays
    now += 1600;
    cluster.tick();
    expect(link.closed).to.equal(undefined);
    expect(task!).to.include({ state: TaskState.SCHEDULED, workerId: 'w1' });
    expect(() => cluster.checkHello(hello('w1'))).to.throw(/already connected/);
    now += 2001; // no answer to this probe: a half-open leftover
    cluster.tick();
    expect(link.closed).to.match(/did not answer a ping/);
    expect(() => cluster.checkHello(hello('w1'))).to.not.throw();
  });

  it('refuses a Hello with out-of-range capacity or bad labels, naming the field', () => {
    const bad = (more: Record<string, unknown>) => create(HelloSchema, { workerId: 'w9', capacity: { millicpu: 1000n, memoryBytes: 1n << 30n }, ...more });
    expect(() => cluster.checkHello(bad({ capacity: { millicpu: -1n, memoryBytes: 1n } }))).to.throw(/hello\.capacity\.millicpu/);
    expect(() => cluster.checkHello(bad({ capacity: { millicpu: 1n, memoryBytes: -(2n ** 63n) } }))).to.throw(/hello\.capacity\.memory_bytes/);
    expect(() => cluster.checkHello(bad({ labels: { big: 'x'.repeat(1 << 20) } }))).to.throw(/hello\.labels\["big"\]/);
    expect(() => cluster.checkHello(bad({ labels: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`l${i}`, 'v'])) }))).to.throw(/at most 64/);
    expect(() => cluster.checkHello(bad({ labels: { 'bad key': 'v' } }))).to.throw(/hello\.labels/);
    expect(() => cluster.checkHello(bad({ workerId: '../x' }))).to.throw(/hello\.worker_id/);
    expect(cluster.workers.size).to.equal(0);
  });

  it('cuts output tails to 4 KiB before storing', async () => {
    const link = new FakeLink();
    cluster.hello(link, hello('w1'));
    const [task] = await cluster.submit(spec('true'));
    cluster.accepted('w1', ta(task!.id, 1));
    cluster.finished('w1', finished(task!.id, 1, { stdoutTail: new Uint8Array(4 << 20).fill(65), error: 'e'.repeat(1 << 20) }));
    await until('the result stored', async () => (await storedTask(task!.id))?.state === TaskState.DONE);
    const stored = decodeTask((await store.get(taskKey(task!.id)))!);
    expect(stored.stdoutTail.byteLength).to.equal(4096);
    expect(stored.error.length).to.be.below(5000);
  });

  it('a stalled manager does not blame its workers: a long gap between readings is not counted', async () => {
    const c = make(store, { maxClockStepMs: 300 });
    const link = new FakeLink();
    c.hello(link, hello('w1'));
    const [task] = await c.submit(spec('true'));
    now += 60_000; // the event loop was blocked for a minute
    c.tick();
    expect(link.closed).to.equal(undefined);
    expect(link.of('cancelTask')).to.have.length(0);
    c.accepted('w1', ta(task!.id, 1)); // the answer that was waiting on the socket
    expect(task!.state).to.equal(TaskState.SCHEDULED);
    for (let i = 0; i < 40; i++) {
      now += 100; // healthy ticks: a silent worker is still caught
      c.tick();
    }
    expect(link.closed).to.match(/missed 3 pings/);
  });

  it('an offer to a worker that went away moves only after its grace, which outlasts the orphan timeout it was given', async () => {
    const c = make(store, { reconnectGraceMs: 10_000 });
    expect(c.welcomeFor('s').orphanTimeoutMs).to.be.within(1, 10_000 - 1);
    const a = new FakeLink();
    c.hello(a, hello('a'));
    const [task] = await c.submit(spec('true'));
    const b = new FakeLink();
    c.hello(b, hello('b'));
    c.disconnect(a, 'a', 'stream broke');
    for (let i = 0; i < 99; i++) {
      now += 100;
      c.seen('b');
      c.tick();
    }
    expect(b.offered()).to.deep.equal([]);
    now += 101;
    c.seen('b');
    c.tick();
    expect(b.offered()).to.deep.equal([task!.id]);
  });
  it('under mutual TLS a certificate is bound to one worker id, also after a restart', async () => {
    const link = new FakeLink();
    cluster.checkHello(hello('w1'), 'cert-1');
    cluster.hello(link, hello('w1'), 'cert-1');
    cluster.disconnect(link, 'w1', 'gone');
    expect(() => cluster.checkHello(hello('w2'), 'cert-1')).to.throw(/certificate "cert-1" belongs to worker w1/);
    expect(() => cluster.checkHello(hello('w1'), 'cert-2')).to.throw(/bound to certificate "cert-1"/);
    expect(() => cluster.checkHello(hello('w1'), 'cert-1')).to.not.throw();
    await until('the worker stored, disconnected, with its certificate', async () => {
      const v = await store.get(workerKey('w1'));
      const w = v && decodeWorker(v);
      return !!w && w.certificateName === 'cert-1' && w.state === WorkerState.DISCONNECTED;
    });
    const restarted = make(store);
    restarted.load([], (await store.range('workers/')).map((kv) => decodeWorker(kv.value)));
    expect(() => restarted.checkHello(hello('w2'), 'cert-1')).to.throw(/belongs to worker w1/);
  });
  it('the largest task record a client and a worker can make stays far below etcd\'s 1.5 MiB request limit', async () => {
    const link = new FakeLink();
    cluster.hello(link, hello('w1'));
    const huge = create(TaskSpecSchema, { argv: ['sh', 'x'.repeat(60_000)], cwd: '/'.repeat(4096) });
    const [task] = await cluster.submit(huge, 1, 'k'.repeat(128));
    cluster.accepted('w1', ta(task!.id, 1));
    const tail = new Uint8Array(8 << 20).fill(66);
    cluster.finished('w1', finished(task!.id, 1, { stdoutTail: tail, stderrTail: tail, error: 'e'.repeat(8 << 20), signal: 'S'.repeat(1 << 20) }));
    await until('the result stored', async () => (await storedTask(task!.id))?.state === TaskState.DONE);
    const bytes = (await store.get(taskKey(task!.id)))!.byteLength;
    expect(bytes).to.be.below(100 * 1024);
  });
  it('forgets workers gone past retention, from memory and store, but not while in their grace or connected', async () => {
    const c = make(store, { retentionMs: 60_000, reconnectGraceMs: 1000 });
    const t0 = now;
    const [a, b] = [new FakeLink(), new FakeLink()];
    c.hello(a, hello('gone'));
    c.hello(b, hello('here'));
    c.disconnect(a, 'gone', 'stream broke');
    expect(c.sweepWorkers(t0 + 60_000)).to.equal(0); // its grace has not ended yet
    now += 1001;
    c.seen('here');
    c.tick();
    expect(c.sweepWorkers(t0 + 59_999)).to.equal(0);
    expect(c.sweepWorkers(t0 + 60_000)).to.equal(1);
    expect([...c.workers.keys()]).to.deep.equal(['here']);
    await until('the delete landed', async () => (await store.range('workers/')).length === 1);
    expect((await store.range('workers/')).map((kv) => decodeWorker(kv.value).id)).to.deep.equal(['here']);
  });
  it('a record the store refuses for good is stored without its output, once; the rest of its batch lands', async () => {
    const picky: Store = {
      ...store,
      commit: (ops) =>
        ops.some((o) => (o.value?.byteLength ?? 0) > 2000) ? Promise.reject(new StoreRefusedError('etcd: request is too large')) : store.commit(ops),
    };
    const c = make(picky);
    const link = new FakeLink();
    c.hello(link, hello('w1'));
    const [big, small] = await Promise.all([c.submit(spec('true')), c.submit(spec('true'))]).then((r) => r.map((ts) => ts[0]!));
    c.accepted('w1', ta(big!.id, 1));
    c.accepted('w1', ta(small!.id, 1));
    c.finished('w1', finished(big!.id, 1, { exitCode: 0, stdoutTail: new Uint8Array(4096).fill(65) }));
    c.finished('w1', finished(small!.id, 1, { exitCode: 3 }));
    await until('both results acknowledged', () => link.of('finishedAck').length === 2);
    expect(link.of('finishedAck').map((m) => m.value.task?.taskId).sort()).to.deep.equal([big!.id, small!.id].sort());
    const stored = decodeTask((await store.get(taskKey(big!.id)))!);
    expect(stored).to.include({ state: TaskState.DONE, exitCode: 0 });
    expect(stored.stdoutTail.byteLength).to.equal(0);
    expect(stored.error).to.match(/store refused the write: etcd: request is too large; output dropped/);
    expect(decodeTask((await store.get(taskKey(small!.id)))!).exitCode).to.equal(3);
  });
  it('a task whose only worker went silent with its offer ends dead ack-timeout once that worker is gone past its grace', async () => {
    const c = make(store, { reconnectGraceMs: 1000 });
    const link = new FakeLink();
    c.hello(link, hello('only'));
    const [task] = await c.submit(spec('true'));
    for (let i = 0; i < 30 && task!.state === TaskState.PENDING; i++) {
      now += 100; // withdrawn at 500 ms, dropped at 1 s, gone past its grace at 2 s
      c.tick();
    }
    expect(link.closed).to.match(/no answer/);
    expect(task).to.include({ state: TaskState.DEAD, deadReason: 'ack-timeout' });
  });
  it('an offer lost with a broken stream goes to the same worker again once it reconnects without it', async () => {
    const first = new FakeLink();
    cluster.hello(first, hello('w1'));
    const [task] = await cluster.submit(spec('true'));
    expect(first.offered()).to.deep.equal([task!.id]);
    cluster.disconnect(first, 'w1', 'stream broke');
    const again = new FakeLink();
    cluster.hello(again, hello('w1')); // lists nothing: it never got the offer
    cluster.pong('w1');
    await turns();
    expect(again.offered()).to.deep.equal([task!.id]);
    expect(task).to.include({ state: TaskState.PENDING, attempt: 2, workerId: 'w1' });
  });
});
