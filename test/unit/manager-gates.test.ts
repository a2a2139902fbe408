// Gates before placement (gates.ts, dependencies.ts, task-edits.ts): dependencies judged on
// stored ends, --at times, hold and release, updates of pending tasks; on the cluster with a
// real embedded store, and after a restart from what the store holds.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { pino } from 'pino';
import { ResourcesSchema, TaskSchema, TaskSpecSchema, TaskState, type Task } from '../../proto/gen/schedapi/v1/types_pb.js';
import { FinishedSchema, HelloSchema } from '../../proto/gen/schedapi/v1/worker_pb.js';
import { Cluster } from '../../management-node/src/cluster.js';
import { judge, type DepRecord } from '../../management-node/src/dependencies.js';
import { createEmbeddedStore } from '../../management-node/src/store/embedded-store.js';
import { createGroupCommitter } from '../../management-node/src/store/group-commit.js';
import { decodeTask, TASKS, taskKey } from '../../management-node/src/store/records.js';
import type { Store } from '../../management-node/src/store/store.js';
import { FakeLink } from '../support/fake-link.js';
import { turns, until } from '../support/until.js';

const log = pino({ level: 'silent' });
const short = (t: Task): string => t.id.slice(-8);

describe('manager gates: dependencies', () => {
  const ended = (state: TaskState, exitCode = 0, deadReason = ''): DepRecord => ({
    missing: false,
    ended: true,
    task: create(TaskSchema, { state, exitCode, deadReason }),
  });
  const records: Record<string, DepRecord> = {
    ok: ended(TaskState.DONE),
    bad: ended(TaskState.DONE, 3),
    dead: ended(TaskState.DEAD, 0, 'cancelled'),
    running: { missing: false, ended: false, state: 'running' },
  };
  const record = (id: string): DepRecord => records[id] ?? { missing: true };

  it('after_ok is met by exit 0 only; after_failed by any other end; after_any by any end', () => {
    expect(judge([{ id: 'ok', kind: 'ok' }], record)).to.deep.equal({ kind: 'met' });
    expect(judge([{ id: 'bad', kind: 'ok' }], record)).to.include({ kind: 'broken', dep: 'bad' });
    expect(judge([{ id: 'dead', kind: 'ok' }], record)).to.deep.include({ why: 'dependency dead ended dead (cancelled); it had to succeed' });
    expect(judge([{ id: 'bad', kind: 'failed' }, { id: 'dead', kind: 'failed' }], record)).to.deep.equal({ kind: 'met' });
    expect(judge([{ id: 'ok', kind: 'failed' }], record)).to.include({ kind: 'broken', dep: 'ok' });
    for (const id of ['ok', 'bad', 'dead']) expect(judge([{ id, kind: 'any' }], record)).to.deep.equal({ kind: 'met' });
  });

  it('waits for the first dependency not ended; one broken or missing breaks the task however many wait', () => {
    expect(judge([{ id: 'ok', kind: 'ok' }, { id: 'running', kind: 'any' }], record)).to.deep.equal({ kind: 'wait', dep: 'running', state: 'running' });
    expect(judge([{ id: 'running', kind: 'ok' }, { id: 'bad', kind: 'ok' }], record)).to.include({ kind: 'broken', dep: 'bad' });
    expect(judge([{ id: 'running', kind: 'ok' }, { id: 'gone', kind: 'any' }], record)).to.include({ kind: 'broken', why: 'dependency gone no longer exists' });
  });
});

describe('manager gates: on the cluster', () => {
  let dir: string;
  let store: Store;
  let now: number;
  let cluster: Cluster;
  let link: FakeLink;
  const make = (s: Store) => new Cluster(createGroupCommitter(s, log), { pingIntervalMs: 1000, missedPings: 3, ackTimeoutMs: 500, recoveryGraceMs: 0, now: () => now }, log);
  const spec = (more: MessageInitShape<typeof TaskSpecSchema> = {}) => create(TaskSpecSchema, { argv: ['true'], ...more });
  const hello = (id: string, millicpu = 2000n) => create(HelloSchema, { workerId: id, capacity: { millicpu, memoryBytes: 1n << 30n } });
  const stored = async (id: string) => decodeTask((await store.get(taskKey(id)))!);
  /** Plays the worker: accepts the latest offer of the task and reports its end. */
  const run = (c: Cluster, t: Task, exitCode = 0, worker = 'w1') => {
    c.accepted(worker, { taskId: t.id, attempt: t.attempt } as never);
    c.finished(worker, create(FinishedSchema, { task: { taskId: t.id, attempt: t.attempt }, exitCode }));
  };
  const ended = async (id: string, c = cluster) => {
    await until(`task ${id} stored ended`, async () => [TaskState.DONE, TaskState.DEAD].includes((await stored(id)).state));
    return c.getTask(id);
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sched-gates-'));
    store = createEmbeddedStore(dir);
    now = 1_000_000;
    cluster = make(store);
    link = new FakeLink();
    cluster.hello(link, hello('w1'));
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a dependent waits, saying for what, and is offered once its dependency succeeded', async () => {
    const [a] = await cluster.submit(spec());
    const [b] = await cluster.submit(spec({ afterOk: [short(a!)] }));
    expect(b!.spec!.afterOk).to.deep.equal([a!.id]); // resolved to the full id, as stored
    expect((await stored(b!.id)).spec!.afterOk).to.deep.equal([a!.id]);
    await until('a offered', () => link.offered().includes(a!.id));
    await turns();
    expect(link.offered()).to.deep.equal([a!.id]);
    expect(cluster.view(b!).pendingReason).to.equal(`waiting for ${short(a!)}: pending`);
    run(cluster, a!);
    await until('b offered after a is stored done', () => link.offered().includes(b!.id));
    expect((await stored(a!.id)).state).to.equal(TaskState.DONE);
  });

  it('a failed dependency ends the dependent dead dependency-failed, and its own dependents after it', async () => {
    const [a] = await cluster.submit(spec());
    const [b] = await cluster.submit(spec({ afterOk: [a!.id] }));
    const [c] = await cluster.submit(spec({ afterOk: [b!.id] }));
    const [d] = await cluster.submit(spec({ afterFailed: [a!.id] }));
    await until('a offered', () => link.offered().includes(a!.id));
    run(cluster, a!, 3);
    for (const t of [b!, c!]) {
      const s = await ended(t.id);
      expect(s).to.include({ state: TaskState.DEAD, deadReason: 'dependency-failed' });
    }
    expect((await stored(b!.id)).error).to.equal(`dependency ${short(a!)} ended done (exit 3); it had to succeed`);
    expect((await stored(c!.id)).error).to.equal(`dependency ${short(b!)} ended dead (dependency-failed); it had to succeed`);
    await until('d offered: its dependency failed', () => link.offered().includes(d!.id));
  });

  it('after_any runs after a dependency that ended dead; after_failed dies when it succeeded', async () => {
    const [a] = await cluster.submit(spec({ constraints: { gpu: 'yes' } })); // never placed
    const [b] = await cluster.submit(spec({ afterAny: [a!.id] }));
    const [c] = await cluster.submit(spec({ afterFailed: [a!.id] }));
    const [ok] = await cluster.submit(spec());
    const [e] = await cluster.submit(spec({ afterFailed: [ok!.id] }));
    await until('ok offered', () => link.offered().includes(ok!.id));
    run(cluster, ok!);
    expect(await ended(e!.id)).to.include({ deadReason: 'dependency-failed' });
    await cluster.cancel([a!.id], 0);
    await until('b and c offered', () => link.offered().includes(b!.id) && link.offered().includes(c!.id));
  });

  it('refuses an unknown dependency naming it, and takes a group id for all its members', async () => {
    const err = await cluster.submit(spec({ afterOk: ['nosuchid'] })).then(() => undefined, (e: Error) => e);
    expect(err?.message).to.equal('spec.after_ok[0]: no task or group "nosuchid"');
    const group = await cluster.submit(spec(), 3);
    const [b] = await cluster.submit(spec({ afterOk: [group[0]!.groupId] }));
    expect([...b!.spec!.afterOk].sort()).to.deep.equal(group.map((t) => t.id).sort());
    const tooMany = spec({ afterAny: Array.from({ length: 1001 }, () => group[0]!.id) });
    expect((await cluster.submit(tooMany).then(() => undefined, (e: Error) => e))?.message).to.match(/at most 1000/);
  });

  it('--at: pending with "starts at" until its time, then offered', async () => {
    const [t] = await cluster.submit(spec({ notBeforeUnixMs: BigInt(now + 60_000) }));
    await turns();
    expect(link.offered()).to.deep.equal([]);
    expect(cluster.view(t!).pendingReason).to.equal(`starts at ${new Date(now + 60_000).toISOString()}`);
    const [due] = await cluster.submit(spec({ notBeforeUnixMs: BigInt(now - 1) }));
    await until('a task already due offered at once', () => link.offered().includes(due!.id));
    const err = await cluster.submit(spec({ notBeforeUnixMs: BigInt(now + 11 * 366 * 86_400_000) })).then(() => undefined, (e: Error) => e);
    expect(err?.message).to.match(/^spec.not_before_unix_ms: is more than ten years ahead/);
  });

  it('--at: the long timer admits the task when its time comes', async () => {
    const [t] = await cluster.submit(spec({ notBeforeUnixMs: BigInt(now + 30) }));
    await turns();
    expect(link.offered()).to.deep.equal([]);
    now += 30;
    await until('offered once due', () => link.offered().includes(t!.id));
  });

  it('hold keeps a pending task from placement until released; idempotent; refuses what is not pending', async () => {
    const [busy] = await cluster.submit(spec({ resources: create(ResourcesSchema, { millicpu: 2000n, memoryBytes: 1n }) }));
    await until('busy offered', () => link.offered().includes(busy!.id));
    cluster.accepted('w1', { taskId: busy!.id, attempt: 1 } as never);
    const [t] = await cluster.submit(spec());
    const held = await cluster.edits.hold([t!], true);
    expect(held.errors).to.deep.equal([]);
    expect((await stored(t!.id)).held).to.equal(true);
    expect((await cluster.edits.hold([t!], true)).errors).to.deep.equal([]); // again: no change, no error
    expect(cluster.view(t!).pendingReason).to.equal('held');
    // Capacity frees: the held task is still not offered.
    cluster.finished('w1', create(FinishedSchema, { task: { taskId: busy!.id, attempt: 1 } }));
    await ended(busy!.id);
    cluster.tick();
    await turns();
    expect(link.offered()).to.deep.equal([busy!.id]);
    const refused = await cluster.edits.hold([busy!], true);
    expect(refused.errors[0]!.message).to.equal(`task ${short(busy!)} is done: only a pending task can be held`);
    await cluster.edits.hold([t!], false);
    expect((await stored(t!.id)).held).to.equal(false);
    await until('offered once released', () => link.offered().includes(t!.id));
    expect((await cluster.edits.hold([t!], true)).errors[0]!.message).to.match(/is offered to worker w1, waiting for its answer/);
  });

  it('update changes a pending task and the queue sees it; a running one is refused', async () => {
    const [t] = await cluster.submit(spec({ constraints: { gpu: 'yes' } }));
    await turns();
    expect(link.offered()).to.deep.equal([]);
    await cluster.edits.update(t!, { priority: 7, constraints: {}, resources: create(ResourcesSchema, { millicpu: 500n }) });
    const s = await stored(t!.id);
    expect(s.spec).to.deep.include({ priority: 7, constraints: {} });
    expect(s.spec!.resources).to.deep.include({ millicpu: 500n, memoryBytes: 64n * 1024n * 1024n });
    await until('offered with its new constraints', () => link.offered().includes(t!.id));
    cluster.accepted('w1', { taskId: t!.id, attempt: 1 } as never);
    const err = await cluster.edits.update(t!, { priority: 1 }).then(() => undefined, (e: Error) => e);
    expect(err?.message).to.equal(`task ${short(t!)} is scheduled: only a pending task can be changed`);
  });

  it('a raised priority moves a queued task ahead of earlier ones', async () => {
    const [busy] = await cluster.submit(spec({ resources: create(ResourcesSchema, { millicpu: 2000n, memoryBytes: 1n }) }));
    await until('busy offered', () => link.offered().includes(busy!.id));
    cluster.accepted('w1', { taskId: busy!.id, attempt: 1 } as never);
    const [first] = await cluster.submit(spec({ resources: create(ResourcesSchema, { millicpu: 2000n, memoryBytes: 1n }) }));
    const [second] = await cluster.submit(spec({ resources: create(ResourcesSchema, { millicpu: 2000n, memoryBytes: 1n }) }));
    await cluster.edits.update(second!, { priority: 5 });
    cluster.finished('w1', create(FinishedSchema, { task: { taskId: busy!.id, attempt: 1 } }));
    await until('the next offer', () => link.offered().length === 2);
    expect(link.offered()[1]).to.equal(second!.id);
    expect(first!.state).to.equal(TaskState.PENDING);
  });

  it('after a restart, dependents wait for what the store holds and run after it; a missing dependency breaks them', async () => {
    const [a] = await cluster.submit(spec());
    const [b] = await cluster.submit(spec({ afterOk: [a!.id] }));
    const [c] = await cluster.submit(spec({ afterOk: [b!.id] }));
    const [x] = await cluster.submit(spec());
    const [y] = await cluster.submit(spec({ afterAny: [x!.id] }));
    await until('a offered', () => link.offered().includes(a!.id));
    cluster.accepted('w1', { taskId: a!.id, attempt: 1 } as never);
    cluster.tick(); // writes the deferred acceptance
    await until('a stored scheduled', async () => (await stored(a!.id)).state === TaskState.SCHEDULED);
    await store.commit([{ key: taskKey(x!.id), value: null }]); // as if retention had removed it
    const restarted = make(store);
    restarted.load((await store.range(TASKS)).map((kv) => decodeTask(kv.value)), []);
    now += 10_001; // past the recovery hold (the reconnect grace: no worker was stored)
    restarted.tick();
    const w = new FakeLink();
    restarted.hello(w, create(HelloSchema, { workerId: 'w1', capacity: { millicpu: 2000n, memoryBytes: 1n << 30n }, running: [{ taskId: a!.id, attempt: 1 }] }));
    expect(await ended(y!.id, restarted)).to.include({ deadReason: 'dependency-failed' });
    expect(restarted.view(restarted.getTask(b!.id)).pendingReason).to.equal(`waiting for ${short(a!)}: scheduled`);
    run(restarted, restarted.getTask(a!.id));
    await until('b offered', () => w.offered().includes(b!.id));
    run(restarted, restarted.getTask(b!.id));
    await until('c offered', () => w.offered().includes(c!.id));
    expect(w.offered()).to.deep.equal([b!.id, c!.id]);
  });
});
