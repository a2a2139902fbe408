// Risky paths of the cluster state machine, on a real embedded store with
// workers played by FakeLinks: results adopted after a restart, results whose
// write fails, late ends of old streams, cancels racing offers and lost
// workers, workers that never come back, schedule timeouts racing offers, and
// Started before Accepted. Every wait here is for an event (a write landing,
// a message sent); nothing sleeps.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import { pino } from 'pino';
import { StoreUnavailableError } from '../../common/errors.js';
import { TaskSpecSchema, TaskState, WorkerState, type Task } from '../../proto/gen/schedapi/v1/types_pb.js';
import { FinishedSchema, HelloSchema } from '../../proto/gen/schedapi/v1/worker_pb.js';
import { Cluster, type ClusterOptions } from '../../management-node/src/cluster.js';
import { createEmbeddedStore } from '../../management-node/src/store/embedded-store.js';
import { createGroupCommitter, type GroupCommitter } from '../../management-node/src/store/group-commit.js';
import { decodeTask, decodeWorker, TASKS, taskKey, WORKERS } from '../../management-node/src/store/records.js';
import type { Store } from '../../management-node/src/store/store.js';
import { FakeLink } from '../support/fake-link.js';
import { until } from '../support/until.js';

const log = pino({ level: 'silent' });

describe('cluster: risky paths', () => {
  let dir: string;
  let store: Store;
  let now: number;
  const spec = (argv: string[], more: Record<string, unknown> = {}) => create(TaskSpecSchema, { argv, ...more });
  const hello = (id: string, running: Array<{ taskId: string; attempt: number }> = []) =>
    create(HelloSchema, { workerId: id, capacity: { millicpu: 2000n, memoryBytes: 1n << 30n }, running });
  const ta = (taskId: string, attempt: number) => ({ taskId, attempt }) as never;
  const finished = (taskId: string, attempt: number, more: Record<string, unknown> = {}) =>
    create(FinishedSchema, { task: { taskId, attempt }, ...more });
  const make = (s: Store, more: Partial<ClusterOptions> = {}): { cluster: Cluster; committer: GroupCommitter } => {
    const committer = createGroupCommitter(s, log);
    const cluster = new Cluster(
      committer,
      { pingIntervalMs: 1000, missedPings: 3, ackTimeoutMs: 500, recoveryGraceMs: 0, reconnectGraceMs: 5000, now: () => now, ...more },
      log,
    );
    return { cluster, committer };
  };
  /** The task as the store holds it, or undefined. */
  const stored = async (id: string): Promise<Task | undefined> => {
    const v = await store.get(taskKey(id));
    return v && decodeTask(v);
  };
  /** Waits until the store holds the task in the given state. */
  const storedAs = async (id: string, state: TaskState): Promise<Task> => {
    await until(`task ${id} stored as ${TaskState[state]}`, async () => (await stored(id))?.state === state);
    return (await stored(id))!;
  };
  /** A fresh cluster over what the store holds now: the manager after a crash. */
  const restart = async (more: Partial<ClusterOptions> = {}): Promise<Cluster> => {
    const { cluster } = make(store, more);
    cluster.load(
      (await store.range(TASKS)).map((kv) => decodeTask(kv.value)),
      (await store.range(WORKERS)).map((kv) => decodeWorker(kv.value)),
    );
    return cluster;
  };
  const acked = (link: FakeLink) => link.of('finishedAck').map((m) => `${m.value.task?.taskId}.${m.value.task?.attempt}`);
  const cancels = (link: FakeLink) => link.of('cancelTask').map((m) => `${m.value.task?.taskId}.${m.value.task?.attempt}:${m.value.reason}`);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sched-paths-'));
    store = createEmbeddedStore(dir);
    now = 1_000_000;
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  describe('finished() after a restart', () => {
    it('adopts the result a worker kept in its outbox for attempt stored+1 of a recovered pending task, and never runs it again', async () => {
      // Before the crash: the task is stored pending; its offer and acceptance were never written.
      const { cluster, committer } = make(store);
      const w1 = new FakeLink();
      cluster.hello(w1, hello('w1'));
      const [task] = await cluster.submit(spec(['true']));
      expect(w1.offered()).to.deep.equal([task!.id]);
      cluster.accepted('w1', ta(task!.id, 1));
      await committer.flush();
      expect(await stored(task!.id)).to.deep.include({ state: TaskState.PENDING, attempt: 0, workerId: '' });

      const restarted = await restart({ recoveryGraceMs: 10_000 });
      const again = new FakeLink();
      const other = new FakeLink();
      restarted.hello(other, hello('w2'));
      // w1 ran the attempt and finished it while the manager was down: Hello lists nothing, the outbox resends.
      restarted.hello(again, hello('w1'));
      restarted.finished('w1', finished(task!.id, 1, { exitCode: 7, startedUnixMs: BigInt(now - 50), finishedUnixMs: BigInt(now - 10) }));
      restarted.pong('w1');
      restarted.pong('w2'); // every worker has reported: the recovery hold ends
      const t = await storedAs(task!.id, TaskState.DONE);
      expect(t).to.deep.include({ attempt: 1, workerId: 'w1', exitCode: 7 });
      await until('FinishedAck after the commit', () => acked(again).length === 1);
      expect(acked(again)).to.deep.equal([`${task!.id}.1`]);
      now += 20_000;
      restarted.seen('w1');
      restarted.seen('w2');
      restarted.tick();
      expect([...again.offered(), ...other.offered()]).to.deep.equal([]);
      expect(restarted.stats.done).to.equal(1);
    });

    it('does not adopt such a result from a worker the store did not know, nor one for an older attempt', async () => {
      const { cluster, committer } = make(store);
      const w1 = new FakeLink();
      cluster.hello(w1, hello('w1'));
      const [task] = await cluster.submit(spec(['true']));
      await committer.flush();

      const restarted = await restart({ recoveryGraceMs: 10_000 });
      const stranger = new FakeLink();
      restarted.hello(stranger, hello('stranger'));
      restarted.finished('stranger', finished(task!.id, 1, { exitCode: 0 }));
      const known = new FakeLink();
      restarted.hello(known, hello('w1'));
      restarted.finished('w1', finished(task!.id, 0, { exitCode: 0 }));
      expect(restarted.getTask(task!.id)).to.deep.include({ state: TaskState.PENDING, attempt: 0 });
      // Each is acknowledged (so neither worker keeps resending it), but nothing is stored.
      expect(acked(stranger)).to.deep.equal([`${task!.id}.1`]);
      expect(acked(known)).to.deep.equal([`${task!.id}.0`]);
      restarted.pong('w1');
      restarted.pong('stranger');
      expect([...known.offered(), ...stranger.offered()]).to.deep.equal([task!.id]);
      expect(restarted.getTask(task!.id).attempt).to.equal(1);
    });
  });

  describe('a result whose store write fails', () => {
    it('is not acknowledged, says UNAVAILABLE to readers meanwhile, and is written again on the next tick', async () => {
      let failing = false;
      const flaky: Store = { ...store, commit: (ops) => (failing ? Promise.reject(new Error('store down')) : store.commit(ops)) };
      const { cluster, committer } = make(flaky);
      const link = new FakeLink();
      cluster.hello(link, hello('w1'));
      const [task] = await cluster.submit(spec(['true']));
      cluster.accepted('w1', ta(task!.id, 1));
      cluster.tick();
      await storedAs(task!.id, TaskState.SCHEDULED);

      failing = true;
      cluster.finished('w1', finished(task!.id, 1, { exitCode: 3 }));
      await committer.flush();
      expect(acked(link)).to.deep.equal([]);
      const err = await cluster.committed(task!.id).then(() => undefined, (e: unknown) => e);
      expect(err).to.be.instanceOf(StoreUnavailableError);
      expect((err as StoreUnavailableError).code).to.equal(grpc.status.UNAVAILABLE);
      expect((err as Error).message).to.match(/not stored yet/);
      // Still failing: the next tick tries again, and it is still neither stored nor acknowledged.
      cluster.tick();
      await committer.flush();
      expect((await stored(task!.id))!.state).to.equal(TaskState.SCHEDULED);
      expect(acked(link)).to.deep.equal([]);

      failing = false;
      cluster.tick();
      expect((await storedAs(task!.id, TaskState.DONE)).exitCode).to.equal(3);
      expect((await cluster.committed(task!.id)).state).to.equal(TaskState.DONE);
      // The worker still holds the result and resends it (after a reconnect): now it is acknowledged.
      cluster.finished('w1', finished(task!.id, 1, { exitCode: 3 }));
      await until('FinishedAck', () => acked(link).length === 1);
      expect(cluster.stats.done).to.equal(1);
    });

    // Acknowledging a repeat at once, while the result's write still fails, would make the worker
    // drop the only durable copy: a manager crash before the retry lands would lose the result.
    it('a repeated report while the write still fails is not acknowledged either', async () => {
      let failing = false;
      const flaky: Store = { ...store, commit: (ops) => (failing ? Promise.reject(new Error('store down')) : store.commit(ops)) };
      const { cluster, committer } = make(flaky);
      const link = new FakeLink();
      cluster.hello(link, hello('w1'));
      const [task] = await cluster.submit(spec(['true']));
      cluster.accepted('w1', ta(task!.id, 1));
      failing = true;
      cluster.finished('w1', finished(task!.id, 1, { exitCode: 3 }));
      await committer.flush();
      cluster.finished('w1', finished(task!.id, 1, { exitCode: 3 })); // resent after a reconnect
      await committer.flush();
      expect(acked(link)).to.deep.equal([]);
      failing = false;
      cluster.tick();
      await storedAs(task!.id, TaskState.DONE);
      cluster.finished('w1', finished(task!.id, 1, { exitCode: 3 }));
      await until('FinishedAck once stored', () => acked(link).length === 1);
    });
  });

  describe('a late end of an old stream', () => {
    it('is ignored: the worker stays connected on its new stream and keeps its tasks past the grace', async () => {
      const { cluster } = make(store, { reconnectGraceMs: 1000 });
      const old = new FakeLink();
      cluster.hello(old, hello('w1'));
      const [task] = await cluster.submit(spec(['sleep', '30']));
      cluster.accepted('w1', ta(task!.id, 1));
      cluster.disconnect(old, 'w1', 'stream broke');
      const fresh = new FakeLink();
      cluster.hello(fresh, hello('w1', [{ taskId: task!.id, attempt: 1 }]));
      cluster.pong('w1');
      // The old stream's end (and a goodbye it carried) arrive after the new stream's Hello.
      cluster.disconnect(old, 'w1', 'stream ended');
      cluster.disconnect(old, 'w1', 'goodbye', true);
      expect(cluster.workers.get('w1')!.state).to.equal(WorkerState.CONNECTED);
      now += 5000;
      cluster.pong('w1');
      cluster.tick();
      expect(task!).to.deep.include({ state: TaskState.SCHEDULED, workerId: 'w1', attempt: 1 });
      expect(fresh.closed).to.equal(undefined);
      // What the manager sends goes to the new stream.
      expect(fresh.of('ping')).to.have.length.greaterThan(0);
      await cluster.cancel([task!.id], 100);
      expect(cancels(fresh)).to.deep.equal([`${task!.id}.1:cancelled`]);
      expect(cancels(old)).to.deep.equal([]);
    });
  });

  describe('cancel()', () => {
    it('a pending task with an outstanding offer: withdrawn, dead at once; a late Accepted is told to stop and frees nothing twice', async () => {
      const { cluster } = make(store, { ackTimeoutMs: 60_000 });
      const link = new FakeLink();
      cluster.hello(link, hello('w1'));
      const big = spec(['sleep', '30'], { resources: { millicpu: 2000n, memoryBytes: 1n << 30n } });
      const [task] = await cluster.submit(big);
      expect(link.offered()).to.deep.equal([task!.id]);
      const [answer] = await cluster.cancel([task!.id], 250);
      expect(answer!.state).to.equal(TaskState.DEAD);
      expect((await storedAs(task!.id, TaskState.DEAD)).deadReason).to.equal('cancelled');
      expect(link.of('cancelTask')).to.have.length(1);
      expect(link.of('cancelTask')[0]!.value).to.deep.include({ reason: 'cancelled', graceMs: 250 });
      expect(link.of('cancelTask')[0]!.value.task).to.deep.include({ taskId: task!.id, attempt: 1 });

      // The worker had accepted before the cancel reached it.
      cluster.accepted('w1', ta(task!.id, 1));
      expect(task!.state).to.equal(TaskState.DEAD);
      expect(cancels(link).at(-1)).to.equal(`${task!.id}.1:offer expired`);
      cluster.started('w1', ta(task!.id, 1), 4242, BigInt(now));
      cluster.finished('w1', finished(task!.id, 1, { signal: 'SIGTERM', exitCode: 143 }));
      expect(task!).to.deep.include({ state: TaskState.DEAD, deadReason: 'cancelled', pid: 0 });
      await until('the stop acknowledged', () => acked(link).length > 0);
      expect(acked(link)).to.deep.equal([`${task!.id}.1`]);
      // Its resources were given back once: the next task that needs the whole worker gets it.
      const [next] = await cluster.submit(big);
      const [after] = await cluster.submit(big);
      expect(link.offered()).to.deep.equal([task!.id, next!.id]);
      expect(cluster.getTask(after!.id).state).to.equal(TaskState.PENDING);
      expect(cluster.stats.dead.get('cancelled')).to.equal(1);
    });

    it('a scheduled task on a disconnected worker: the cancel reaches it when it comes back, and it ends dead (cancelled)', async () => {
      const { cluster } = make(store, { reconnectGraceMs: 5000 });
      const link = new FakeLink();
      cluster.hello(link, hello('w1'));
      const [task] = await cluster.submit(spec(['sleep', '30']));
      cluster.accepted('w1', ta(task!.id, 1));
      cluster.disconnect(link, 'w1', 'stream broke');
      const [answer] = await cluster.cancel([task!.id], 300);
      // Nobody to tell yet: it stays scheduled until its worker reports the exit.
      expect(answer!.state).to.equal(TaskState.SCHEDULED);
      expect(cancels(link)).to.deep.equal([]);
      const back = new FakeLink();
      cluster.hello(back, hello('w1', [{ taskId: task!.id, attempt: 1 }]));
      expect(back.of('cancelTask').map((m) => m.value)).to.have.length(1);
      expect(back.of('cancelTask')[0]!.value).to.deep.include({ reason: 'cancelled', graceMs: 300 });
      cluster.finished('w1', finished(task!.id, 1, { signal: 'SIGTERM', exitCode: 143 }));
      const t = await storedAs(task!.id, TaskState.DEAD);
      expect(t).to.deep.include({ deadReason: 'cancelled', signal: 'SIGTERM', exitCode: 143 });
    });

    // Losing the worker must not forget the cancel: retried, a cancelled task would run again elsewhere.
    it('a scheduled task whose worker never comes back after the cancel ends dead, not retried', async () => {
      const { cluster } = make(store, { reconnectGraceMs: 5000 });
      const link = new FakeLink();
      cluster.hello(link, hello('w1'));
      const [task] = await cluster.submit(spec(['sleep', '30'], { retries: 2 }));
      cluster.accepted('w1', ta(task!.id, 1));
      cluster.disconnect(link, 'w1', 'stream broke');
      await cluster.cancel([task!.id], 300);
      const other = new FakeLink();
      cluster.hello(other, hello('w2'));
      now += 5001;
      cluster.seen('w2');
      cluster.tick();
      // The operator cancelled it: losing its worker must not start it again elsewhere.
      expect(other.offered()).to.deep.equal([]);
      expect(task!.state).to.equal(TaskState.DEAD);
      expect((await storedAs(task!.id, TaskState.DEAD)).deadReason).to.match(/^cancelled|^worker-lost/);
    });
  });

  describe('after a restart, a worker that never returns', () => {
    it('loses its scheduled tasks once the grace ends: retried elsewhere while retries remain, else dead worker-lost', async () => {
      const { cluster, committer } = make(store);
      const link = new FakeLink();
      cluster.hello(link, hello('w1'));
      const [once] = await cluster.submit(spec(['sleep', '30']));
      const [retried] = await cluster.submit(spec(['sleep', '30'], { retries: 1 }));
      cluster.accepted('w1', ta(once!.id, 1));
      cluster.accepted('w1', ta(retried!.id, 1));
      cluster.tick();
      await committer.flush();
      expect((await stored(once!.id))!.state).to.equal(TaskState.SCHEDULED);
      expect((await stored(retried!.id))!.state).to.equal(TaskState.SCHEDULED);

      const restarted = await restart({ reconnectGraceMs: 5000 });
      const w2 = new FakeLink();
      restarted.hello(w2, hello('w2'));
      restarted.pong('w2');
      for (let i = 0; i < 49; i++) {
        now += 100;
        restarted.seen('w2');
        restarted.tick();
      }
      // Within the grace: w1 may still come back with them.
      expect(restarted.getTask(once!.id).state).to.equal(TaskState.SCHEDULED);
      expect(restarted.getTask(retried!.id).state).to.equal(TaskState.SCHEDULED);
      expect(w2.offered()).to.deep.equal([]);
      now += 101;
      restarted.seen('w2');
      restarted.tick();
      expect((await storedAs(once!.id, TaskState.DEAD)).deadReason).to.equal('worker-lost');
      expect(w2.offered()).to.deep.equal([retried!.id]);
      expect(restarted.getTask(retried!.id)).to.deep.include({ attempt: 2, retriesUsed: 1, workerId: 'w2' });
      // A late report of the old attempt from w1 changes nothing.
      const late = new FakeLink();
      restarted.hello(late, hello('w1'));
      restarted.finished('w1', finished(retried!.id, 1, { exitCode: 0 }));
      expect(restarted.getTask(retried!.id)).to.deep.include({ state: TaskState.PENDING, attempt: 2 });
    });
  });

  describe('schedule timeout', () => {
    it('does not end a task whose offer is outstanding; accepted late, it runs', async () => {
      const { cluster } = make(store, { ackTimeoutMs: 5000 });
      const link = new FakeLink();
      cluster.hello(link, hello('w1'));
      const [task] = await cluster.submit(spec(['true'], { scheduleTimeoutMs: 1000 }));
      expect(link.offered()).to.deep.equal([task!.id]);
      now += 1500;
      cluster.seen('w1');
      cluster.tick();
      expect(task!.state).to.equal(TaskState.PENDING);
      cluster.accepted('w1', ta(task!.id, 1));
      expect(task!.state).to.equal(TaskState.SCHEDULED);
      cluster.finished('w1', finished(task!.id, 1, { exitCode: 0 }));
      expect((await storedAs(task!.id, TaskState.DONE)).exitCode).to.equal(0);
    });

    // The schedule deadline is not dropped while an offer is outstanding: a task refused after its
    // deadline would otherwise wait forever.
    it('ends a task dead (schedule-timeout) once the offer outstanding at its deadline is refused', async () => {
      const { cluster } = make(store, { ackTimeoutMs: 5000 });
      const w1 = new FakeLink();
      cluster.hello(w1, hello('w1'));
      // w2 exists but is full, so a refusal by w1 leaves the task waiting, not unplaceable.
      const w2 = new FakeLink();
      cluster.hello(w2, create(HelloSchema, { workerId: 'w2', capacity: { millicpu: 2000n, memoryBytes: 1n << 30n } }));
      await cluster.drain('w2', true);
      const [task] = await cluster.submit(spec(['true'], { scheduleTimeoutMs: 1000 }));
      expect(w1.offered()).to.deep.equal([task!.id]);
      await cluster.drain('w2', false);
      const [filler] = await cluster.submit(spec(['sleep', '30'], { resources: { millicpu: 2000n, memoryBytes: 1n << 30n } }));
      expect(w2.offered()).to.deep.equal([filler!.id]);
      cluster.accepted('w2', ta(filler!.id, 1));
      now += 1500;
      cluster.seen('w1');
      cluster.seen('w2');
      cluster.tick();
      cluster.rejected('w1', ta(task!.id, 1), 'busy');
      now += 100;
      cluster.seen('w1');
      cluster.seen('w2');
      cluster.tick();
      expect(task!.state).to.equal(TaskState.DEAD);
      expect((await storedAs(task!.id, TaskState.DEAD)).deadReason).to.equal('schedule-timeout');
    });
  });

  describe('Started before Accepted', () => {
    it('schedules the task, keeps its pid, and neither the late Accepted nor the ack deadline disturbs it', async () => {
      const { cluster } = make(store, { ackTimeoutMs: 500 });
      const link = new FakeLink();
      cluster.hello(link, hello('w1'));
      const [task] = await cluster.submit(spec(['sleep', '1']));
      now += 10;
      cluster.started('w1', ta(task!.id, 1), 4242, BigInt(now));
      expect(task!).to.deep.include({ state: TaskState.SCHEDULED, workerId: 'w1', attempt: 1, pid: 4242, startedUnixMs: BigInt(now) });
      cluster.accepted('w1', ta(task!.id, 1));
      now += 1200; // past the ack timeout twice over
      cluster.seen('w1');
      cluster.tick();
      expect(cancels(link)).to.deep.equal([]);
      expect(link.closed).to.equal(undefined);
      expect((await storedAs(task!.id, TaskState.SCHEDULED)).pid).to.equal(4242);
      cluster.finished('w1', finished(task!.id, 1, { exitCode: 0, pid: 4242 }));
      expect(await storedAs(task!.id, TaskState.DONE)).to.deep.include({ attempt: 1, pid: 4242 });
      expect(link.offered()).to.deep.equal([task!.id]);
    });
  });
});
