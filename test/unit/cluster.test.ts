// The cluster state machine on a real embedded store, with workers played by
// in-memory links that record what the manager sends them.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { pino } from 'pino';
import { TaskSpecSchema, TaskState, WorkerSchema, WorkerState } from '../../proto/gen/schedapi/v1/types_pb.js';
import { FinishedSchema, HelloSchema, LogChunkSchema } from '../../proto/gen/schedapi/v1/worker_pb.js';
import { Cluster } from '../../management-node/src/cluster.js';
import { FakeLink } from '../support/fake-link.js';
import { createEmbeddedStore } from '../../management-node/src/store/embedded-store.js';
import { createGroupCommitter, type GroupCommitter } from '../../management-node/src/store/group-commit.js';
import { decodeTask, decodeWorker, taskKey, workerKey } from '../../management-node/src/store/records.js';
import type { Store } from '../../management-node/src/store/store.js';
import { until, turns } from '../support/until.js';

const log = pino({ level: 'silent' });

async function expectRejects(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  const err = await p.then(() => undefined, (e: Error) => e);
  expect(err?.message).to.match(pattern);
}


describe('cluster', () => {
  let dir: string;
  let store: Store;
  let now: number;
  let cluster: Cluster;
  const spec = (...argv: string[]) => create(TaskSpecSchema, { argv });
  const hello = (id: string, running: Array<{ taskId: string; attempt: number }> = []) =>
    create(HelloSchema, { workerId: id, capacity: { millicpu: 2000n, memoryBytes: 1n << 30n }, running });
  /** The group committer of each cluster made here: settled(c) resolves once every write c issued so far has landed or failed. */
  const committers = new WeakMap<Cluster, GroupCommitter>();
  const settled = (c: Cluster) => committers.get(c)!.flush();
  const storedTask = async (id: string) => {
    const v = await store.get(taskKey(id));
    return v && decodeTask(v);
  };

  const makeCluster = (s: Store) => {
    const committer = createGroupCommitter(s, log);
    const c = new Cluster(committer, { pingIntervalMs: 1000, missedPings: 3, ackTimeoutMs: 500, recoveryGraceMs: 0, now: () => now }, log);
    committers.set(c, committer);
    return c;
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sched-cluster-'));
    store = createEmbeddedStore(dir);
    now = 1_000_000;
    cluster = makeCluster(store);
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('places by resources: fills a worker up to its capacity, queues the rest by priority and says why they wait', async () => {
    const link = new FakeLink();
    cluster.hello(link, hello('w1')); // 2 cpu, 1 GiB
    const sized = (cpu: bigint, mem: bigint, priority = 0) =>
      create(TaskSpecSchema, { argv: ['true'], resources: { millicpu: cpu, memoryBytes: mem }, priority });
    const [a] = await cluster.submit(sized(1500n, 256n << 20n));
    const [low] = await cluster.submit(sized(1000n, 256n << 20n));
    const [high] = await cluster.submit(sized(1000n, 256n << 20n, 10));
    const [defaults] = await cluster.submit(spec('true'));
    expect(defaults!.spec!.resources).to.include({ millicpu: 250n, memoryBytes: 64n << 20n });
    // Only a fits now. The head of the queue (high: priority first) reserves w1, so the small
    // default task may not backfill into room the head is waiting for.
    expect(link.of('startTask').map((m) => m.value.taskId)).to.deep.equal([a!.id]);
    expect(cluster.view(low!).pendingReason).to.equal('0/1 workers fit: 1 insufficient cpu');
    expect(cluster.view(defaults!).pendingReason).to.equal('0/1 workers fit: 1 reserved for an earlier task');
    expect(cluster.view(cluster.getTask(a!.id)).pendingReason).to.match(/^offered to worker w1/);
    cluster.accepted('w1', { taskId: a!.id, attempt: 1 } as never);
    cluster.finished('w1', create(FinishedSchema, { task: { taskId: a!.id, attempt: 1 }, exitCode: 0 }));
    // Room freed: high goes first although submitted last, then low; the default task waits again.
    expect(link.of('startTask').map((m) => m.value.taskId).slice(1)).to.deep.equal([high!.id, low!.id]);
    expect(cluster.getTask(defaults!.id).state).to.equal(TaskState.PENDING);
    // A task no worker can ever hold waits (the fleet may grow) and says so.
    const [huge] = await cluster.submit(sized(500n, 64n << 30n));
    expect(cluster.view(huge!).pendingReason).to.equal('0/1 workers fit: 1 insufficient cpu; no connected worker could ever fit it');
  });

  it('stores a task pending before answering, and waits for a worker when there is none', async () => {
    const task = (await cluster.submit(spec('true')))[0]!;
    expect(task.state).to.equal(TaskState.PENDING);
    expect(decodeTask((await store.get(taskKey(task.id)))!).state).to.equal(TaskState.PENDING);
  });

  it('offers to a connected worker; Accepted → scheduled; Finished → done and acknowledged after commit', async () => {
    const link = new FakeLink();
    cluster.checkHello(hello('w1'));
    cluster.hello(link, hello('w1'));
    const task = (await cluster.submit(spec('echo', 'hi')))[0]!;
    const [offer] = link.of('startTask');
    expect(offer?.value.taskId).to.equal(task.id);
    expect(offer?.value.attempt).to.equal(1);
    cluster.accepted('w1', { taskId: task.id, attempt: 1 } as never);
    expect(task.state).to.equal(TaskState.SCHEDULED);
    // Nobody waits for "scheduled": it is written on the next tick, and readers wait for that.
    await settled(cluster);
    expect(decodeTask((await store.get(taskKey(task.id)))!).state).to.equal(TaskState.PENDING);
    const read = cluster.committed(task.id);
    cluster.tick();
    expect((await read).state).to.equal(TaskState.SCHEDULED);
    expect(decodeTask((await store.get(taskKey(task.id)))!)).to.deep.include({ state: TaskState.SCHEDULED, attempt: 1, workerId: 'w1' });
    cluster.finished('w1', create(FinishedSchema, { task: { taskId: task.id, attempt: 1 }, exitCode: 3 }));
    expect(link.of('finishedAck')).to.have.length(0);
    await until('FinishedAck once the result is committed', () => link.of('finishedAck').length === 1);
    const stored = decodeTask((await store.get(taskKey(task.id)))!);
    expect(stored.state).to.equal(TaskState.DONE);
    expect(stored.exitCode).to.equal(3);
    // A duplicate report (resent after a reconnect) changes nothing but is acknowledged again.
    cluster.finished('w1', create(FinishedSchema, { task: { taskId: task.id, attempt: 1 }, exitCode: 99 }));
    expect(task.exitCode).to.equal(3);
    await until('the repeat acknowledged (its record is stored)', () => link.of('finishedAck').length === 2);
  });

  it('rejected offers go to the next worker; when every worker refused, the task is dead', async () => {
    const a = new FakeLink();
    const b = new FakeLink();
    cluster.hello(a, hello('a'));
    cluster.hello(b, hello('b'));
    const task = (await cluster.submit(spec('true')))[0]!;
    const first = task.workerId;
    cluster.rejected(first, { taskId: task.id, attempt: 1 } as never, 'busy');
    cluster.tick();
    expect(task.workerId).to.not.equal(first);
    expect(task.attempt).to.equal(2);
    cluster.rejected(task.workerId, { taskId: task.id, attempt: 2 } as never, 'busy');
    cluster.tick();
    expect(task.state).to.equal(TaskState.DEAD);
    expect(task.deadReason).to.match(/no worker accepted/);
  });

  it('no answer within the ack timeout: the offer is withdrawn, and the task is dead ack-timeout once the worker confirms', async () => {
    const link = new FakeLink();
    cluster.hello(link, hello('w1'));
    const task = (await cluster.submit(spec('true')))[0]!;
    now += 501;
    cluster.tick();
    // Withdrawn, not given up: the worker may run it, so nothing else may until it says it does not.
    expect(link.of('cancelTask').map((m) => m.value.task?.taskId)).to.deep.equal([task.id]);
    expect(task.state).to.equal(TaskState.PENDING);
    cluster.accepted('w1', { taskId: task.id, attempt: 1 } as never); // late: ignored, the cancel is on its way
    expect(task.state).to.equal(TaskState.PENDING);
    cluster.rejected('w1', { taskId: task.id, attempt: 1 } as never, 'not running on this worker');
    expect(task.state).to.equal(TaskState.DEAD);
    expect(task.deadReason).to.equal('ack-timeout');
  });

  it('pings every interval and disconnects a worker after the missed pings', async () => {
    const link = new FakeLink();
    cluster.hello(link, hello('w1'));
    now += 1000;
    cluster.tick();
    expect(link.of('ping')).to.have.length(1);
    cluster.seen('w1');
    now += 3000;
    cluster.tick();
    expect(cluster.workers.get('w1')?.state).to.equal(WorkerState.CONNECTED);
    now += 1;
    cluster.tick();
    expect(link.closed).to.match(/missed 3 pings/);
    expect(cluster.workers.get('w1')?.state).to.equal(WorkerState.DISCONNECTED);
    await until('the worker stored as disconnected', async () => {
      const v = await store.get(workerKey('w1'));
      return v !== undefined && decodeWorker(v).state === WorkerState.DISCONNECTED;
    });
  });

  it('after a restart, keeps what a reconnecting worker runs and cancels what it must not', async () => {
    const link = new FakeLink();
    cluster.hello(link, hello('w1'));
    const running = (await cluster.submit(spec('sleep', '9')))[0]!;
    cluster.accepted('w1', { taskId: running.id, attempt: 1 } as never);
    cluster.tick(); // writes the deferred "scheduled"
    await until('the task stored as scheduled', async () => (await storedTask(running.id))?.state === TaskState.SCHEDULED);
    await settled(cluster); // and the worker record

    const restarted = makeCluster(store);
    const tasks = [decodeTask((await store.get(taskKey(running.id)))!)];
    restarted.load(tasks, [decodeWorker((await store.get(workerKey('w1')))!)]);
    expect(restarted.workers.get('w1')?.state).to.equal(WorkerState.DISCONNECTED);
    const again = new FakeLink();
    restarted.hello(again, hello('w1', [{ taskId: running.id, attempt: 1 }, { taskId: 'stranger', attempt: 1 }]));
    expect(restarted.getTask(running.id).state).to.equal(TaskState.SCHEDULED);
    expect(again.of('cancelTask').map((m) => m.value.task?.taskId)).to.deep.equal(['stranger']);
  });

  it('after a restart, holds recovered pending tasks for the grace period but places new ones at once', async () => {
    const old = (await cluster.submit(spec('true')))[0]!;
    const restarted = new Cluster(
      createGroupCommitter(store, log),
      { pingIntervalMs: 1000, missedPings: 3, ackTimeoutMs: 500, recoveryGraceMs: 2000, reconnectGraceMs: 2000, now: () => now },
      log,
    );
    restarted.load([decodeTask((await store.get(taskKey(old.id)))!)], []);
    const link = new FakeLink();
    restarted.hello(link, hello('w1'));
    const fresh = (await restarted.submit(spec('true')))[0]!;
    expect(link.of('startTask').map((m) => m.value.taskId)).to.deep.equal([fresh.id]);
    now += 2001;
    restarted.tick();
    expect(link.of('startTask').map((m) => m.value.taskId)).to.deep.equal([fresh.id, old.id]);
  });

  it('after a restart, holds recovered pending tasks at least the reconnect grace, however short recovery_grace is', async () => {
    // A worker that was connected may run an attempt whose offer was never stored; if it does not
    // come back, its orphan timeout (shorter than the reconnect grace) kills that attempt first.
    const old = (await cluster.submit(spec('true')))[0]!;
    const restarted = new Cluster(
      createGroupCommitter(store, log),
      { pingIntervalMs: 1000, missedPings: 3, ackTimeoutMs: 500, recoveryGraceMs: 1000, reconnectGraceMs: 5000, now: () => now },
      log,
    );
    const wasConnected = create(WorkerSchema, { id: 'slow', state: WorkerState.CONNECTED, lastSeenUnixMs: BigInt(now) });
    restarted.load([decodeTask((await store.get(taskKey(old.id)))!)], [wasConnected]);
    const link = new FakeLink();
    restarted.hello(link, hello('w1'));
    for (let t = 0; t < 4900; t += 100) {
      now += 100;
      restarted.tick();
      restarted.pong('w1');
    }
    expect(link.of('startTask')).to.deep.equal([]); // past recovery_grace, within the reconnect grace
    for (let t = 0; t < 300; t += 100) {
      now += 100;
      restarted.tick();
      restarted.pong('w1');
    }
    expect(link.of('startTask').map((m) => m.value.taskId)).to.deep.equal([old.id]);
  });

  it('after a restart, ends the hold early once every worker that was connected has reported back', async () => {
    const old = (await cluster.submit(spec('true')))[0]!;
    const restarted = new Cluster(
      createGroupCommitter(store, log),
      { pingIntervalMs: 1000, missedPings: 3, ackTimeoutMs: 500, recoveryGraceMs: 10_000, now: () => now },
      log,
    );
    const wasConnected = (id: string) => create(WorkerSchema, { id, state: WorkerState.CONNECTED, lastSeenUnixMs: BigInt(now) });
    restarted.load([decodeTask((await store.get(taskKey(old.id)))!)], [wasConnected('w1'), wasConnected('w2')]);
    const l1 = new FakeLink();
    const l2 = new FakeLink();
    restarted.hello(l1, hello('w1'));
    restarted.pong('w1');
    expect(restarted.view(restarted.getTask(old.id)).pendingReason).to.match(/^manager restarted/);
    restarted.hello(l2, hello('w2'));
    expect(l1.of('startTask').length + l2.of('startTask').length).to.equal(0); // w2 has not reported yet
    restarted.pong('w2');
    expect([...l1.of('startTask'), ...l2.of('startTask')].map((m) => m.value.taskId)).to.deep.equal([old.id]);
  });

  it('removes finished tasks past retention or beyond max_finished_tasks, oldest first, from memory and store', async () => {
    const c = new Cluster(
      createGroupCommitter(store, log),
      { pingIntervalMs: 1000, missedPings: 3, ackTimeoutMs: 500, recoveryGraceMs: 0, retentionMs: 60_000, maxFinishedTasks: 2, now: () => now },
      log,
    );
    const link = new FakeLink();
    c.hello(link, hello('w1'));
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      now += 1;
      const t = (await c.submit(spec('true')))[0]!;
      c.accepted('w1', { taskId: t.id, attempt: 1 } as never);
      if (i < 4) c.finished('w1', create(FinishedSchema, { task: { taskId: t.id, attempt: 1 }, finishedUnixMs: BigInt(now) }));
      ids.push(t.id);
    }
    await until('the four results stored', async () => (await Promise.all(ids.slice(0, 4).map(storedTask))).every((t) => t?.state === TaskState.DONE));
    expect(c.sweepFinished(now)).to.equal(2); // 4 finished, keep 2
    expect([...c.tasks.keys()]).to.deep.equal(ids.slice(2));
    now += 60_001;
    expect(c.sweepFinished(now)).to.equal(2); // the rest are past retention; the running one stays
    await until('the deletes landed', async () => (await store.range('tasks/')).length === 1);
    expect((await store.range('tasks/')).map((kv) => kv.key)).to.deep.equal([taskKey(ids[4]!)]);
  });

  it('answers readers with what the store holds: a change is shown once its write has landed', async () => {
    let gate: (() => void) | undefined;
    let commits = 0;
    const gated: Store = {
      ...store,
      commit: async (ops) => {
        // The submission lands; the next write waits for the gate.
        if (commits++ > 0 && gate === undefined) await new Promise<void>((resolve) => (gate = resolve));
        return store.commit(ops);
      },
    };
    const c = new Cluster(
      createGroupCommitter(gated, log),
      { pingIntervalMs: 1000, missedPings: 3, ackTimeoutMs: 500, recoveryGraceMs: 0, now: () => now },
      log,
    );
    const link = new FakeLink();
    c.hello(link, hello('w1'));
    const submitted = c.submit(spec('true'));
    await submitted;
    await until('the offer', () => link.of('startTask').length === 1);
    const id = link.of('startTask')[0]!.value.taskId!;
    c.accepted('w1', { taskId: id, attempt: 1 } as never);
    c.finished('w1', create(FinishedSchema, { task: { taskId: id, attempt: 1 }, exitCode: 0 }));
    expect(c.getTask(id).state).to.equal(TaskState.DONE); // in memory, not stored yet
    let seen: TaskState | undefined;
    const read = c.committed(id).then((t) => (seen = t.state));
    await until('the result\'s write reached the store', () => gate !== undefined);
    await turns();
    expect(seen).to.equal(undefined);
    gate!();
    await Promise.all([submitted, read]);
    expect(seen).to.equal(TaskState.DONE);
    expect(decodeTask((await store.get(taskKey(id)))!).state).to.equal(TaskState.DONE);
  });

  it('a submission whose write fails is refused and forgotten, and was never offered', async () => {
    // The submission's txn is applied but its answer is lost; then the store is down for a while.
    let mode: 'answer-lost' | 'down' | 'up' = 'up';
    const flaky: Store = {
      ...store,
      commit: async (ops) => {
        if (mode === 'down') throw new Error('store down');
        if (mode === 'answer-lost') {
          await store.commit(ops);
          mode = 'down';
          throw new Error('store down');
        }
        return store.commit(ops);
      },
    };
    const c = new Cluster(
      createGroupCommitter(flaky, log),
      { pingIntervalMs: 1000, missedPings: 3, ackTimeoutMs: 500, recoveryGraceMs: 0, now: () => now },
      log,
    );
    const link = new FakeLink();
    c.hello(link, hello('w1'));
    mode = 'answer-lost';
    const err = await c.submit(spec('true')).then(() => undefined, (e: Error) => e);
    expect(err?.message).to.equal('store down');
    expect(c.tasks.size).to.equal(0);
    expect(link.of('startTask')).to.have.length(0);
    expect(await store.range('tasks/')).to.have.length(1); // the record a failed txn may leave
    mode = 'up';
    // The delete is retried on a tick once the store answers.
    await until('the stray record deleted', async () => {
      c.tick();
      return (await store.range('tasks/')).length === 0;
    });
    expect(link.of('startTask')).to.have.length(0);
  });

  it('a disconnected worker\'s scheduled tasks are lost after the reconnect grace, unless it comes back', async () => {
    const link = new FakeLink();
    cluster.hello(link, hello('w1'));
    const a = (await cluster.submit(spec('sleep', '9')))[0]!;
    const b = (await cluster.submit(spec('sleep', '9')))[0]!;
    cluster.accepted('w1', { taskId: a.id, attempt: 1 } as never);
    cluster.accepted('w1', { taskId: b.id, attempt: 1 } as never);
    cluster.disconnect(link, 'w1', 'stream broke');
    now += 9_000;
    cluster.tick();
    expect(a.state).to.equal(TaskState.SCHEDULED);
    // Back in time, running only a; b's result was not kept either, so b is lost at the first pong.
    const again = new FakeLink();
    cluster.hello(again, hello('w1', [{ taskId: a.id, attempt: 1 }]));
    now += 2_000;
    cluster.tick();
    expect(a.state).to.equal(TaskState.SCHEDULED);
    expect(b.state).to.equal(TaskState.SCHEDULED);
    cluster.pong('w1');
    expect(a.state).to.equal(TaskState.SCHEDULED);
    expect(b.state).to.equal(TaskState.DEAD);
    expect(b.deadReason).to.match(/^worker-lost/);
    // Gone for good this time.
    cluster.disconnect(again, 'w1', 'stream broke');
    now += 10_001;
    cluster.tick();
    expect(a.state).to.equal(TaskState.DEAD);
    expect(a.deadReason).to.equal('worker-lost');
  });

  it('a drained or leaving worker gets no new tasks; undrain places what waited; drain is stored', async () => {
    const link = new FakeLink();
    cluster.hello(link, hello('w1'));
    const w = await cluster.drain('w1', true);
    expect(w.draining).to.equal(true);
    expect(decodeWorker((await store.get(workerKey('w1')))!).draining).to.equal(true);
    const [t] = await cluster.submit(spec('true'));
    expect(link.of('startTask')).to.have.length(0);
    expect(cluster.view(t!).pendingReason).to.equal('0/1 workers fit: 1 draining');
    await cluster.drain('w1', false);
    expect(link.of('startTask').map((m) => m.value.taskId)).to.deep.equal([t!.id]);
    await expectRejects(cluster.drain('nope', true), /worker "nope" not found/);

    cluster.leaving('w1', 'worker-node received SIGTERM');
    expect(cluster.workerView(cluster.getWorker('w1')).leaving).to.equal(true);
    await cluster.submit(spec('true'));
    expect(link.of('startTask')).to.have.length(1);
    // A new stream is a fresh start: it says Leaving again if it still is.
    cluster.hello(new FakeLink(), hello('w1'));
    expect(cluster.getWorker('w1').leaving).to.equal(false);
  });

  it('relays a task\'s log from its worker by request id, and ends it when the worker goes', async () => {
    const link = new FakeLink();
    cluster.hello(link, hello('w1'));
    const [t] = await cluster.submit(spec('echo', 'hi'));
    expect(() => cluster.readLogs(t!.id, { stderr: false, follow: false }, { data: () => undefined, end: () => undefined })).to.not.throw();
    const got: string[] = [];
    let ended: Error | undefined | null = null;
    const sub = { data: (d: Uint8Array) => void got.push(Buffer.from(d).toString()), end: (e?: Error) => void (ended = e) };
    cluster.readLogs(t!.id, { stderr: true, tailLines: 5, follow: true }, sub);
    const req = link.of('readLogs')[1]!;
    expect(req.value).to.deep.include({ stderr: true, tailLines: 5, follow: true });
    expect(req!.value.task).to.deep.include({ taskId: t!.id, attempt: 1 });
    const chunk = (data: string, eof = false, error = '') =>
      create(LogChunkSchema, { requestId: req.value.requestId ?? 0n, data: Buffer.from(data), eof, error });
    cluster.logChunk('w2', chunk('not from this worker'));
    cluster.logChunk('w1', chunk('line 1\n'));
    cluster.logChunk('w1', chunk('line 2\n', true));
    cluster.logChunk('w1', chunk('after the end'));
    expect(got).to.deep.equal(['line 1\n', 'line 2\n']);
    expect(ended).to.equal(undefined);

    let lost: Error | undefined;
    const stop = cluster.readLogs(t!.id, { stderr: false, follow: true }, { data: () => undefined, end: (e) => void (lost = e) });
    cluster.disconnect(link, 'w1', 'stream broke');
    expect(lost?.message).to.equal("the task's worker w1 disconnected while sending the log");
    stop();
    let offline: Error | undefined;
    cluster.readLogs(t!.id, { stderr: false, follow: false }, { data: () => undefined, end: (e) => void (offline = e) });
    expect(offline?.message).to.match(/^the task's worker w1 is disconnected/);
    const [pending] = await cluster.submit(spec('true'));
    expect(() => cluster.readLogs(pending!.id, { stderr: false, follow: false }, sub)).to.throw(/has not run yet \(pending\): it has no logs/);
  });

  it('a worker that says goodbye loses its scheduled tasks at once', async () => {
    const link = new FakeLink();
    cluster.hello(link, hello('w1'));
    const a = (await cluster.submit(spec('sleep', '9')))[0]!;
    cluster.accepted('w1', { taskId: a.id, attempt: 1 } as never);
    cluster.disconnect(link, 'w1', 'goodbye', true);
    cluster.tick();
    expect(a.state).to.equal(TaskState.DEAD);
  });

  it('--count creates one group of tasks, all stored before the answer', async () => {
    const tasks = await cluster.submit(spec('true'), 5);
    expect(tasks).to.have.length(5);
    expect(new Set(tasks.map((t) => t.groupId)).size).to.equal(1);
    expect(tasks[0]!.groupId).to.match(/^[0-9a-f-]{36}$/);
    expect(await store.range('tasks/')).to.have.length(5);
    const err = await cluster.submit(spec('true'), 10_001).then(() => '', (e: Error) => e.message);
    expect(err).to.match(/^count: /);
  });

  it('a lost worker\'s task is placed again with a new attempt while retries remain, and a late report of the old attempt is ignored', async () => {
    const a = new FakeLink();
    cluster.hello(a, hello('a'));
    const task = (await cluster.submit(create(TaskSpecSchema, { argv: ['sleep', '9'], retries: 1 })))[0]!;
    cluster.accepted('a', { taskId: task.id, attempt: 1 } as never);
    cluster.disconnect(a, 'a', 'gone', true);
    const b = new FakeLink();
    cluster.hello(b, hello('b'));
    cluster.tick();
    expect(task.state).to.equal(TaskState.PENDING);
    expect(task.retriesUsed).to.equal(1);
    expect(task.workerId).to.equal('b');
    expect(task.attempt).to.equal(2);
    cluster.accepted('b', { taskId: task.id, attempt: 2 } as never);
    // The first attempt's result arrives late (worker a came back): fenced off.
    cluster.hello(new FakeLink(), hello('a'));
    cluster.finished('a', create(FinishedSchema, { task: { taskId: task.id, attempt: 1 }, exitCode: 1 }));
    expect(task.state).to.equal(TaskState.SCHEDULED);
    // Lost again, no retries left: dead.
    cluster.disconnect(b, 'b', 'gone', true);
    cluster.tick();
    expect(task.state).to.equal(TaskState.DEAD);
    expect(task.deadReason).to.equal('worker-lost');
  });

  it('a task not placed within its schedule timeout ends dead', async () => {
    const task = (await cluster.submit(create(TaskSpecSchema, { argv: ['true'], scheduleTimeoutMs: 1000 })))[0]!;
    now += 999;
    cluster.tick();
    expect(task.state).to.equal(TaskState.PENDING);
    now += 2;
    cluster.tick();
    expect(task.state).to.equal(TaskState.DEAD);
    expect(task.deadReason).to.equal('schedule-timeout');
  });

  it('refuses invalid specs with the field named, storing nothing', async () => {
    const failure = (argv: string[], env: Record<string, string> = {}) =>
      cluster.submit(create(TaskSpecSchema, { argv, env })).then(
        () => '',
        (err: Error) => err.message,
      );
    expect(await failure([])).to.match(/^spec\.argv: /);
    expect(await failure([''])).to.match(/^spec\.argv: /);
    expect(await failure(['true'], { 'A=B': '1' })).to.match(/^spec\.env\["A=B"\]: /);
    const bad = (init: Record<string, unknown>) =>
      cluster.submit(create(TaskSpecSchema, { argv: ['true'], ...init })).then(() => '', (e: Error) => e.message);
    expect(await bad({ strategy: 'random' })).to.match(/^spec\.strategy: /);
    expect(await bad({ resources: { millicpu: -1n } })).to.match(/^spec\.resources\.millicpu: /);
    expect(await bad({ argv: ['x'.repeat(70_000)] })).to.match(/^spec: is \d+ bytes/);
    expect(cluster.tasks.size).to.equal(0);
    expect(await store.range('tasks/')).to.have.length(0);
  });

  it('refuses a worker with the wrong join token', () => {
    const guarded = new Cluster(
      createGroupCommitter(store, log),
      { pingIntervalMs: 1000, missedPings: 3, ackTimeoutMs: 500, recoveryGraceMs: 0, joinToken: 'secret' },
      log,
    );
    expect(() => guarded.checkHello(hello('w1'))).to.throw(/invalid join token/);
    expect(() => guarded.checkHello(create(HelloSchema, { workerId: 'w1', token: 'secret', capacity: { millicpu: 1000n, memoryBytes: 1n << 30n } }))).to.not.throw();
  });
});
