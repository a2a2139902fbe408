// Group limits (tasks run --count N --max-parallel K): at most K members of a group
// live at once, in the placement core on its own (a model checks every pass) and on
// the cluster with a real embedded store (retries, cancel, update, restart).
import { expect } from 'chai';
import fc from 'fast-check';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { pino } from 'pino';
import { TaskSpecSchema, TaskState } from '../../proto/gen/schedapi/v1/types_pb.js';
import { FinishedSchema, HelloSchema } from '../../proto/gen/schedapi/v1/worker_pb.js';
import { Cluster, type ClusterOptions } from '../../management-node/src/cluster.js';
import { createScheduler, type GroupRef, type Resources, type Scheduler } from '../../management-node/src/scheduler/scheduler.js';
import { createEmbeddedStore } from '../../management-node/src/store/embedded-store.js';
import { createGroupCommitter } from '../../management-node/src/store/group-commit.js';
import { decodeTask, TASKS, taskKey } from '../../management-node/src/store/records.js';
import type { Store } from '../../management-node/src/store/store.js';
import { FakeLink } from '../support/fake-link.js';
import { until } from '../support/until.js';

const small: Resources = { millicpu: 100, memoryBytes: 1 };
const big: Resources = { millicpu: 1_000_000, memoryBytes: 1_000_000 };

function withWorkers(n: number, capacity: Resources = big): Scheduler {
  const s = createScheduler();
  for (let i = 0; i < n; i++) s.upsertWorker({ id: `w${i}`, capacity, labels: {}, draining: false });
  return s;
}

let seq = 0;
const enqueue = (s: Scheduler, id: string, group?: GroupRef, priority = 0) =>
  s.enqueue({ id, resources: small, constraints: {}, priority, seq: ++seq, ...(group ? { group } : {}) });
const placed = (s: Scheduler) => s.schedule().map((p) => p.taskId);

describe('scheduler core: group limits (max_parallel)', () => {
  it('places at most K members of a group; each release lets the next one go', () => {
    const s = withWorkers(2);
    const g = { id: 'g', maxParallel: 3 };
    for (let i = 0; i < 8; i++) enqueue(s, `t${i}`, g);
    expect(placed(s)).to.deep.equal(['t0', 't1', 't2']);
    expect(placed(s)).to.deep.equal([]);
    expect(s.groupLive('g')).to.equal(3);
    expect(s.explain('t3')).to.equal('group at its limit: 3 of 3 running');
    s.release('t1');
    expect(placed(s)).to.deep.equal(['t3']);
    s.remove('t0');
    s.remove('t2');
    expect(placed(s)).to.deep.equal(['t4', 't5']);
    expect(s.queued()).to.equal(2);
  });

  it('a group at its limit holds up neither other groups nor ungrouped tasks of the same shape', () => {
    const s = withWorkers(1);
    for (let i = 0; i < 4; i++) enqueue(s, `a${i}`, { id: 'a', maxParallel: 1 }, 5);
    for (let i = 0; i < 2; i++) enqueue(s, `b${i}`, { id: 'b', maxParallel: 0 });
    enqueue(s, 'solo');
    expect(placed(s)).to.deep.equal(['a0', 'b0', 'b1', 'solo']);
    expect(s.explain('a1')).to.equal('group at its limit: 1 of 1 running');
  });

  it('a member excluded from a worker (its own queue class) still obeys the limit', () => {
    const s = withWorkers(2);
    const g = { id: 'g', maxParallel: 1 };
    enqueue(s, 't0', g);
    enqueue(s, 't1', g);
    s.exclude('t1', 'w0');
    expect(placed(s)).to.deep.equal(['t0']);
    expect(placed(s)).to.deep.equal([]);
    s.release('t0');
    s.remove('t0');
    expect(s.schedule()).to.deep.equal([{ taskId: 't1', workerId: 'w1' }]);
  });

  it('a refused offer gives its place back: released and queued again, the member waits like the others', () => {
    const s = withWorkers(2);
    const g = { id: 'g', maxParallel: 2 };
    for (let i = 0; i < 4; i++) enqueue(s, `t${i}`, g);
    expect(placed(s)).to.deep.equal(['t0', 't1']);
    // dispatch.takeBack: release, exclude, enqueue again (keeping its seq)
    s.release('t0');
    s.exclude('t0', 'w0');
    s.enqueue({ id: 't0', resources: small, constraints: {}, priority: 0, seq: -1, group: g });
    expect(s.groupLive('g')).to.equal(1);
    expect(placed(s)).to.deep.equal(['t0']);
    expect(s.allocation('t0')?.workerId).to.equal('w1');
    expect(placed(s)).to.deep.equal([]);
  });

  it('after a restart: allocated and held members count; a held one stops counting when queued again', () => {
    const s = withWorkers(2);
    const g = { id: 'g', maxParallel: 2 };
    s.allocate('t0', 'w0', small, g); // scheduled before the restart
    s.hold('t1', g); // pending, held: it may be running unseen
    enqueue(s, 't2', g); // a member a repeated submission created
    expect(placed(s)).to.deep.equal([]);
    expect(s.explain('t2')).to.equal('group at its limit: 2 of 2 running');
    s.enqueue({ id: 't1', resources: small, constraints: {}, priority: 0, seq: -1, group: g }); // the hold is over
    expect(s.groupLive('g')).to.equal(1);
    expect(placed(s)).to.deep.equal(['t1']);
    s.release('t0');
    expect(placed(s)).to.deep.equal(['t2']);
  });

  it('a changed limit applies at once: raised lets members go, lowered stops new ones, 0 lifts it', () => {
    const s = withWorkers(3);
    const g = { id: 'g', maxParallel: 1 };
    for (let i = 0; i < 10; i++) enqueue(s, `t${i}`, g);
    expect(placed(s)).to.have.length(1);
    s.setGroupLimit('g', 3);
    expect(placed(s)).to.have.length(2);
    s.setGroupLimit('g', 2);
    s.release('t0');
    expect(placed(s)).to.deep.equal([]);
    s.release('t1');
    expect(placed(s)).to.deep.equal(['t3']);
    s.setGroupLimit('g', 0);
    expect(placed(s)).to.have.length(6);
    s.setGroupLimit('g', 1);
    enqueue(s, 'late', g);
    expect(placed(s)).to.deep.equal([]);
  });

  it('forgets a group once nothing of it is live or queued', () => {
    const s = withWorkers(1);
    enqueue(s, 't0', { id: 'g', maxParallel: 1 });
    enqueue(s, 't1', { id: 'g', maxParallel: 1 });
    placed(s);
    s.remove('t0');
    placed(s);
    s.remove('t1');
    expect(s.groupLive('g')).to.equal(0);
    // A new member brings it back with its own limit.
    enqueue(s, 'x0', { id: 'g', maxParallel: 1 });
    enqueue(s, 'x1', { id: 'g', maxParallel: 1 });
    expect(placed(s)).to.deep.equal(['x0']);
  });

  it('model: no pass places a member while its group is at its limit, and none is left behind below it', () => {
    const G = 3;
    const T = 14;
    const W = 3;
    const opArb = fc.oneof(
      { weight: 5, arbitrary: fc.record({ op: fc.constant('enqueue' as const), task: fc.nat(T - 1) }) },
      { weight: 4, arbitrary: fc.record({ op: fc.constant('schedule' as const), limit: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }) }) },
      { weight: 4, arbitrary: fc.record({ op: fc.constant('release' as const), pick: fc.nat() }) },
      { weight: 2, arbitrary: fc.record({ op: fc.constant('retry' as const), pick: fc.nat(), worker: fc.nat(W - 1) }) },
      { weight: 1, arbitrary: fc.record({ op: fc.constant('remove' as const), task: fc.nat(T - 1) }) },
      { weight: 1, arbitrary: fc.record({ op: fc.constant('hold' as const), task: fc.nat(T - 1) }) },
      { weight: 1, arbitrary: fc.record({ op: fc.constant('allocate' as const), task: fc.nat(T - 1), worker: fc.nat(W - 1) }) },
      { weight: 1, arbitrary: fc.record({ op: fc.constant('limit' as const), group: fc.nat(G - 1), k: fc.nat(3) }) },
    );
    fc.assert(
      fc.property(
        fc.array(fc.nat(3), { minLength: G, maxLength: G }),
        fc.array(fc.option(fc.nat(G - 1), { nil: undefined }), { minLength: T, maxLength: T }),
        fc.array(opArb, { maxLength: 80 }),
        (limits, groupOfTask, ops) => {
          const s = withWorkers(W);
          const groupOf = (i: number): GroupRef | undefined => {
            const g = groupOfTask[i];
            return g === undefined ? undefined : { id: `g${g}`, maxParallel: limits[g]! };
          };
          const queued = new Set<number>();
          const live = new Set<number>(); // placed, allocated or held
          const allocated = new Set<number>();
          const excluded = new Map<number, Set<number>>();
          const liveIn = (g: number) => [...live].filter((t) => groupOfTask[t] === g).length;
          let n = 0;
          const requeue = (t: number) => {
            s.enqueue({ id: `t${t}`, resources: small, constraints: {}, priority: t % 2, seq: ++n, group: groupOf(t) });
            queued.add(t);
            live.delete(t);
          };
          for (const op of ops) {
            switch (op.op) {
              case 'enqueue':
                if (!allocated.has(op.task)) requeue(op.task);
                break;
              case 'schedule': {
                const before = new Map(Array.from({ length: G }, (_, g) => [g, liveIn(g)]));
                for (const p of s.schedule(op.limit)) {
                  const t = Number(p.taskId.slice(1));
                  expect(queued.has(t), `${p.taskId} was queued`).to.equal(true);
                  expect(excluded.get(t)?.has(Number(p.workerId.slice(1))) ?? false, 'not excluded').to.equal(false);
                  const g = groupOfTask[t];
                  if (g !== undefined && limits[g]! > 0) {
                    expect(liveIn(g), `g${g} below its limit ${limits[g]} when ${p.taskId} was placed`).to.be.below(limits[g]!);
                  }
                  queued.delete(t);
                  live.add(t);
                  allocated.add(t);
                }
                for (let g = 0; g < G; g++) if (limits[g]! > 0) expect(liveIn(g)).to.be.at.most(Math.max(limits[g]!, before.get(g)!));
                if (op.limit === undefined) {
                  // Workers are never full: a task left queued is excluded everywhere, or its group is at its limit.
                  for (const t of queued) {
                    const g = groupOfTask[t];
                    const atLimit = g !== undefined && limits[g]! > 0 && liveIn(g) >= limits[g]!;
                    expect(atLimit || (excluded.get(t)?.size ?? 0) === W, `t${t} left behind`).to.equal(true);
                  }
                }
                break;
              }
              case 'release': {
                const ids = [...allocated];
                const t = ids[op.pick % Math.max(1, ids.length)];
                if (t === undefined) break;
                s.release(`t${t}`);
                allocated.delete(t);
                live.delete(t);
                break;
              }
              case 'retry': {
                // An offer refused: released, excluded from that worker, queued again.
                const ids = [...allocated];
                const t = ids[op.pick % Math.max(1, ids.length)];
                if (t === undefined) break;
                s.release(`t${t}`);
                allocated.delete(t);
                s.exclude(`t${t}`, `w${op.worker}`);
                excluded.set(t, (excluded.get(t) ?? new Set()).add(op.worker));
                requeue(t);
                break;
              }
              case 'remove':
                s.remove(`t${op.task}`);
                queued.delete(op.task);
                allocated.delete(op.task);
                live.delete(op.task);
                excluded.delete(op.task);
                break;
              case 'hold': {
                const g = groupOf(op.task);
                if (g === undefined || queued.has(op.task) || allocated.has(op.task)) break;
                s.hold(`t${op.task}`, g);
                live.add(op.task);
                break;
              }
              case 'allocate':
                s.allocate(`t${op.task}`, `w${op.worker}`, small, groupOf(op.task));
                queued.delete(op.task);
                allocated.add(op.task);
                live.add(op.task);
                break;
              case 'limit':
                limits[op.group] = op.k;
                s.setGroupLimit(`g${op.group}`, op.k);
                break;
            }
            expect(s.queued()).to.equal(queued.size);
            for (let g = 0; g < G; g++) expect(s.groupLive(`g${g}`), `live in g${g}`).to.equal(liveIn(g));
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('cluster: group limits with a real embedded store', () => {
  const log = pino({ level: 'silent' });
  let dir: string;
  let store: Store;
  let now: number;
  const make = (more: Partial<ClusterOptions> = {}) =>
    new Cluster(createGroupCommitter(store, log), { pingIntervalMs: 1000, missedPings: 3, ackTimeoutMs: 500, recoveryGraceMs: 0, now: () => now, ...more }, log);
  const hello = (id: string, running: Array<{ taskId: string; attempt: number }> = []) =>
    create(HelloSchema, { workerId: id, capacity: { millicpu: 64_000n, memoryBytes: 1n << 40n }, running });
  const spec = (maxParallel: number, ...argv: string[]) => create(TaskSpecSchema, { argv, maxParallel, retries: 1 });
  const finished = (taskId: string, attempt: number, more: Record<string, unknown> = {}) =>
    create(FinishedSchema, { task: { taskId, attempt }, ...more });
  /** Offers sent and not yet settled by a test, per task: (worker, attempt). */
  const starts = (...links: FakeLink[]) =>
    links.flatMap((l) =>
      l.of('startTask').map(({ value: v }) => ({
        taskId: v.taskId ?? '',
        attempt: v.attempt ?? 0,
        groupId: v.groupId ?? '',
        groupIndex: v.groupIndex ?? 0,
        groupSize: v.groupSize ?? 0,
        argv: v.spec?.argv ?? [],
      })),
    );

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sched-maxpar-'));
    store = createEmbeddedStore(dir);
    now = 1_000_000;
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('offers K members; each end, loss (retry) or cancel lets exactly one more go; StartTask names the group', async () => {
    const c = make();
    const link = new FakeLink();
    c.hello(link, hello('w1'));
    const tasks = await c.submit(spec(2, 'work', '--shard={index}', '{{index}}'), 6);
    await until('2 offered', () => link.offered().length === 2);
    const [a, b] = starts(link);
    expect(a).to.include({ groupId: tasks[0]!.groupId, groupIndex: 0, groupSize: 6, attempt: 1 });
    expect(a!.argv).to.deep.equal(['work', '--shard=0', '{index}']);
    expect(b!.argv).to.deep.equal(['work', '--shard=1', '{index}']);
    c.accepted('w1', { taskId: a!.taskId, attempt: 1 } as never);
    c.accepted('w1', { taskId: b!.taskId, attempt: 1 } as never);
    const pending = await c.committed(tasks[2]!.id);
    expect(pending.pendingReason).to.equal('group at its limit: 2 of 2 running');
    // ended: one more
    c.finished('w1', finished(a!.taskId, 1));
    await until('a third offered', () => link.offered().length === 3);
    expect(link.offered()[2]).to.equal(tasks[2]!.id);
    c.accepted('w1', { taskId: tasks[2]!.id, attempt: 1 } as never);
    // lost with a retry left: queued again in its old place (before the members still waiting)
    c.finished('w1', finished(b!.taskId, 1, { lost: true, error: 'killed' }));
    await until('a fourth offered', () => link.offered().length === 4);
    expect(starts(link)[3]).to.include({ taskId: b!.taskId, attempt: 2 });
    c.accepted('w1', { taskId: b!.taskId, attempt: 2 } as never);
    // cancel of a running member: it counts until its worker reports the exit
    await c.cancel([tasks[2]!.id], 0);
    c.tick();
    expect(link.offered()).to.have.length(4);
    c.finished('w1', finished(tasks[2]!.id, 1, { signal: 'SIGTERM', exitCode: 143 }));
    await until('a fifth offered', () => link.offered().length === 5);
    expect(link.offered()[4]).to.equal(tasks[3]!.id);
    expect((await c.committed(tasks[2]!.id)).deadReason).to.equal('cancelled');
    expect(c.tasks.get(tasks[5]!.id)?.state).to.equal(TaskState.PENDING);
  });

  it('tasks update --max-parallel: stored in every member, applied at once', async () => {
    const c = make();
    const link = new FakeLink();
    c.hello(link, hello('w1'));
    const tasks = await c.submit(spec(1, 'true'), 5);
    await until('1 offered', () => link.offered().length === 1);
    await c.setMaxParallel(tasks[4]!.id, 3);
    await until('3 offered', () => link.offered().length === 3);
    for (const t of tasks) expect(decodeTask((await store.get(taskKey(t.id)))!).spec?.maxParallel).to.equal(3);
    const single = await c.submit(spec(0, 'true'));
    const err = await c.setMaxParallel(single[0]!.id, 2).then(() => undefined, (e: Error) => e);
    expect(err?.message).to.match(/not in a group/);
  });

  it("a repeated keyed submission recreates a lost member with its own {index} and the group's current max_parallel", async () => {
    const c = make();
    const raw = () => spec(2, 'render', '--frame={index}');
    const tasks = await c.submit(raw(), 3, 'job');
    expect(tasks.map((t) => t.spec?.argv[1])).to.deep.equal(['--frame=0', '--frame=1', '--frame=2']);
    await c.setMaxParallel(tasks[0]!.id, 1);
    await store.commit([{ key: taskKey(tasks[1]!.id), value: null }]); // as if that write never landed
    const restarted = make();
    restarted.load((await store.range(TASKS)).map((kv) => decodeTask(kv.value)), []);
    const again = await restarted.submit(raw(), 3, 'job');
    expect(again[0]!.id).to.equal(tasks[0]!.id);
    expect(again[1]!.id).to.not.equal(tasks[1]!.id);
    expect(again[1]!.spec).to.deep.include({ argv: ['render', '--frame=1'], maxParallel: 1 });
    const other = await restarted.submit(spec(2, 'render', '--frame=x'), 3, 'job').then(() => undefined, (e: Error) => e);
    expect(other?.message).to.match(/different task spec/);
  });

  it('after a restart the counts come from the store: scheduled and held members count, nothing more is offered', async () => {
    const c = make();
    const link = new FakeLink();
    c.hello(link, hello('w1'));
    const tasks = await c.submit(spec(2, 'sleep', '60'), 5);
    await until('2 offered', () => link.offered().length === 2);
    const [a] = starts(link);
    c.accepted('w1', { taskId: a!.taskId, attempt: 1 } as never);
    c.tick();
    await until('stored scheduled', async () => decodeTask((await store.get(taskKey(a!.taskId)))!).state === TaskState.SCHEDULED);
    // The manager dies (kill -9): the second offer's acceptance never reached the store.
    const restarted = make({ recoveryGraceMs: 60_000, reconnectGraceMs: 60_000, pingIntervalMs: 600_000 });
    restarted.load((await store.range(TASKS)).map((kv) => decodeTask(kv.value)), []);
    const link2 = new FakeLink();
    restarted.hello(link2, hello('w2'));
    restarted.tick();
    expect(link2.offered()).to.deep.equal([]); // held: the recovery hold
    // The hold ends (here: its grace); the scheduled one still counts, the held one is queued again.
    now += 61_000;
    restarted.tick();
    restarted.tick();
    restarted.tick();
    await until('one more offered', () => link2.offered().length >= 1);
    restarted.tick();
    expect(link2.offered()).to.have.length(1);
    expect((await restarted.committed(tasks[4]!.id)).pendingReason).to.equal('group at its limit: 2 of 2 running');
  });
});
