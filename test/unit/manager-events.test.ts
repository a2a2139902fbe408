// The manager's event history (events.ts) on a real embedded store and group
// committer, and WatchEvents over a real gRPC socket (server/events-service.ts).
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import * as http2 from 'node:http2';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create, fromBinary, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import { pino } from 'pino';
import { WatchEventsRequestSchema, WatchEventsResponseSchema, type WatchEventsResponse } from '../../proto/gen/schedapi/v1/management_pb.js';
import { TaskSchema, WorkerSchema, type Task } from '../../proto/gen/schedapi/v1/types_pb.js';
import { EventLog, EventsGoneError, type EventLogOptions, type StoredEvent } from '../../management-node/src/events.js';
import { eventFilter } from '../../management-node/src/server/events-service.js';
import { createEmbeddedStore } from '../../management-node/src/store/embedded-store.js';
import { createGroupCommitter, type GroupCommitter } from '../../management-node/src/store/group-commit.js';
import { encodeTask, encodeWorker, taskKey, workerKey } from '../../management-node/src/store/records.js';
import type { Store } from '../../management-node/src/store/store.js';
import { FakeLink } from '../support/fake-link.js';
import { helloOf, startManagerRpc, type ManagerRpc } from '../support/manager-rpc.js';
import { until } from '../support/until.js';

const log = pino({ level: 'silent' });
const task = (id: string, more: MessageInitShape<typeof TaskSchema> = {}) => encodeTask(create(TaskSchema, { id, ...more }));
const worker = (id: string) => encodeWorker(create(WorkerSchema, { id }));

/** Every event held from seq on, as [revision, kind, id]. */
function read(events: EventLog, seq: number): Array<[bigint, string, string]> {
  const out: Array<[bigint, string, string]> = [];
  for (;;) {
    const e = events.at(seq++);
    if (e === undefined) return out;
    if (e === 'gone') throw new Error('gone');
    out.push([e.revision, e.kind, events.object(e).id]);
  }
}

describe('manager: event history', () => {
  let dir: string;
  let store: Store;
  const make = (s: Store, opts: EventLogOptions = {}): { committer: GroupCommitter; events: EventLog } => {
    const committer = createGroupCommitter(s, log);
    return { committer, events: new EventLog(committer, log, opts) };
  };
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sched-events-'));
    store = createEmbeddedStore(dir);
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('makes each stored task and worker change one event with the revision its txn got, in revision order', async () => {
    const { committer, events } = make(store);
    const first = events.start(0n);
    const revisions = await Promise.all([committer.write(taskKey('t1'), task('t1')), committer.write(workerKey('w1'), worker('w1'))]);
    const again = await committer.write(taskKey('t1'), task('t1', { attempt: 1 }));
    // Deletes and other keys are no events.
    await Promise.all([committer.write(taskKey('t1'), null), committer.write('meta/other', new Uint8Array([1]))]);
    const got = read(events, first);
    expect(got.map(([, kind, id]) => `${kind}:${id}`)).to.deep.equal(['task:t1', 'worker:w1', 'task:t1']);
    expect(got.map(([r]) => r)).to.deep.equal([revisions[0], revisions[1], again]);
    expect(again > revisions[0]!).to.equal(true);
    expect((await store.getWithRevision(workerKey('w1')))!.modRevision).to.equal(revisions[1]);
    expect(events.latestRevision()).to.equal((await store.txn({ compare: [], ops: [] })).revision);
  });

  it('holds an event only once its txn is stored', async () => {
    let release: (() => void) | undefined;
    const gated: Store = { ...store, commit: async (ops) => (await new Promise<void>((r) => (release = r)), store.commit(ops)) };
    const { committer, events } = make(gated);
    const written = committer.write(taskKey('t1'), task('t1'));
    await until('the txn reached the store', () => release !== undefined);
    expect(events.size).to.equal(0);
    release!();
    const revision = await written;
    expect(events.size).to.equal(1);
    expect((await store.getWithRevision(taskKey('t1')))!.modRevision).to.equal(revision);
  });

  it('tells of the chunks of one batch in revision order, whatever order they land in', async () => {
    // Three chunks (300 writes): the first one's answer comes back last.
    const answers: Array<() => void> = [];
    let calls = 0;
    const reordered: Store = {
      ...store,
      commit: async (ops) => {
        const revision = await store.commit(ops);
        if (calls++ === 0) await new Promise<void>((r) => answers.push(r));
        return revision;
      },
    };
    const { committer, events } = make(reordered);
    await committer.flush();
    const heard: bigint[] = [];
    committer.onCommit((revision) => heard.push(revision));
    const writes = Array.from({ length: 300 }, (_, i) => committer.write(taskKey(`t${String(i).padStart(3, '0')}`), task(`t${i}`)));
    await until('the other chunks answered', () => calls === 3);
    answers[0]!();
    await Promise.all(writes);
    expect(heard.length).to.equal(3);
    expect([...heard].sort((a, b) => (a < b ? -1 : 1))).to.deep.equal(heard);
    const revisions = read(events, 0).map(([r]) => r);
    expect(revisions.length).to.equal(300);
    for (let i = 1; i < revisions.length; i++) expect(revisions[i]! >= revisions[i - 1]!).to.equal(true);
  });

  it('starts from the revision the store had; from then on latestRevision is the newest commit', async () => {
    await store.commit([{ key: 'meta/x', value: new Uint8Array([1]) }]);
    const before = await store.commit([{ key: taskKey('old'), value: task('old') }]);
    const { committer, events } = make(store);
    await committer.flush();
    expect(events.latestRevision()).to.equal(before);
    // Resuming from there misses nothing; from before it, the history does not reach.
    expect(events.start(before)).to.equal(0);
    expect(() => events.start(before - 1n)).to.throw(EventsGoneError);
    const next = await committer.write(taskKey('new'), task('new'));
    expect(events.latestRevision()).to.equal(next);
    expect(read(events, events.start(before)).map(([r, , id]) => [r, id])).to.deep.equal([[next, 'new']]);
  });

  it('keeps at most maxEvents events and maxBytes bytes, dropping the oldest first', async () => {
    const { committer, events } = make(store, { maxEvents: 5 });
    for (let i = 0; i < 8; i++) await committer.write(taskKey(`t${i}`), task(`t${i}`));
    expect(events.size).to.equal(5);
    expect(events.at(2)).to.equal('gone');
    expect(read(events, 3).map(([, , id]) => id)).to.deep.equal(['t3', 't4', 't5', 't6', 't7']);

    const big = make(store, { maxBytes: 100_000 });
    const tail = new Uint8Array(10_000);
    for (let i = 0; i < 20; i++) await big.committer.write(taskKey(`b${i}`), task(`b${i}`, { stdoutTail: tail }));
    // Each counts twice its record (the bytes, and the record decoded) plus a little.
    expect(big.events.size).to.be.within(3, 5);
    expect(read(big.events, 20 - big.events.size).map(([, , id]) => id).at(-1)).to.equal('b19');
  });

  it('refuses a revision older than what it holds with OUT_OF_RANGE naming the oldest held; 0 is from now on', async () => {
    const { committer, events } = make(store, { maxEvents: 3 });
    const revs: bigint[] = [];
    for (let i = 0; i < 6; i++) revs.push(await committer.write(taskKey(`t${i}`), task(`t${i}`)));
    // Held: the events of revs[3..5]; resuming after revs[2] misses nothing, after revs[1] would.
    expect(read(events, events.start(revs[2]!)).map(([r]) => r)).to.deep.equal(revs.slice(3));
    let err: unknown;
    try {
      events.start(revs[1]!);
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(EventsGoneError);
    expect((err as EventsGoneError).code).to.equal(grpc.status.OUT_OF_RANGE);
    expect((err as Error).message).to.include(`the oldest event it holds has revision ${revs[3]}`);
    const now = events.start(0n);
    expect(events.at(now)).to.equal(undefined);
    await committer.write(taskKey('later'), task('later'));
    expect(read(events, now).map(([, , id]) => id)).to.deep.equal(['later']);
  });

  it('resumed after any revision, gives exactly the later events: none missed, none repeated', async () => {
    const { committer, events } = make(store);
    await committer.flush();
    const from = events.latestRevision();
    // Batches of several changes (one revision each), some coalesced on one key.
    for (let round = 0; round < 10; round++) {
      await Promise.all(Array.from({ length: 1 + (round % 4) }, (_, i) => committer.write(taskKey(`r${round}-${i % 3}`), task(`r${round}-${i % 3}`))));
    }
    const all = read(events, events.start(from));
    for (const [after] of all) {
      const resumed = read(events, events.start(after));
      expect(resumed).to.deep.equal(all.filter(([r]) => r > after));
    }
  });

  it('filters by kind (neither: both) and tasks by group', () => {
    const ev = (kind: 'task' | 'worker', groupId = ''): [StoredEvent, () => Task] => {
      const t = create(TaskSchema, { id: 'x', groupId });
      return [{ seq: 0, revision: 1n, unixMs: 0, kind, bytes: new Uint8Array() }, () => t];
    };
    const cases: Array<[Parameters<typeof eventFilter>, boolean[]]> = [
      [[{ tasks: false, workers: false }, ''], [true, true, true]],
      [[{ tasks: true, workers: false }, ''], [true, true, false]],
      [[{ tasks: false, workers: true }, ''], [false, false, true]],
      // A group names tasks: without a kind, its tasks only.
      [[{ tasks: false, workers: false }, 'g1'], [true, false, false]],
      [[{ tasks: false, workers: true }, 'g1'], [false, false, true]],
      [[{ tasks: true, workers: false }, 'g1'], [true, false, false]],
    ];
    for (const [args, want] of cases) {
      const matches = eventFilter(...args);
      expect([matches(...ev('task', 'g1')), matches(...ev('task', 'g2')), matches(...ev('worker'))], JSON.stringify(args)).to.deep.equal(want);
    }
  });
});

describe('manager: WatchEvents over gRPC', () => {
  let m: ManagerRpc;
  afterEach(async () => m.close());

  /** Collects a stream's events until it has n (or ends). */
  const collect = (call: grpc.ClientReadableStream<WatchEventsResponse>) => {
    const got: WatchEventsResponse[] = [];
    const state: { err?: grpc.ServiceError; ended: boolean } = { ended: false };
    call.on('data', (e: WatchEventsResponse) => got.push(e));
    call.on('error', (err: grpc.ServiceError) => ((state.err = err), (state.ended = true)));
    call.on('end', () => (state.ended = true));
    return { got, state };
  };

  it('streams task and worker changes as they are stored, with increasing revisions, filtered by kind and group', async () => {
    m = await startManagerRpc();
    await m.committer.flush();
    const all = collect(m.client.watchEvents({}));
    const workersOnly = collect(m.client.watchEvents({ workers: true }));
    await until('both streams listen', () => m.cluster.events.streams === 2);
    m.cluster.hello(new FakeLink(), helloOf('w1'));
    const group = await m.client.runTask({ spec: { argv: ['true'], constraints: { nowhere: 'true' } }, count: 2 });
    const groupId = group.tasks[0]!.groupId;
    const inGroup = collect(m.client.watchEvents({ groupId: groupId.slice(-8), tasks: true, afterRevision: m.cluster.events.latestRevision() - 1n }));
    await m.client.runTask({ spec: { argv: ['true'], constraints: { nowhere: 'true' } } });
    await until('every change arrived', () => all.got.length >= 4);
    const kinds = all.got.map((e) => e.object.case);
    expect(kinds.filter((k) => k === 'task').length).to.equal(3);
    expect(kinds).to.include('worker');
    for (let i = 1; i < all.got.length; i++) expect(all.got[i]!.revision >= all.got[i - 1]!.revision).to.equal(true);
    // Each is what the store holds at that revision.
    for (const e of all.got) {
      const id = e.object.value!.id;
      const kv = await m.store.getWithRevision(e.object.case === 'task' ? taskKey(id) : workerKey(id));
      expect(kv!.modRevision).to.equal(e.revision);
    }
    await until('the worker stream got its event', () => workersOnly.got.length === 1);
    expect(workersOnly.got[0]!.object.case).to.equal('worker');
    // The group's two tasks were stored in the last revision before the group stream started.
    await until('the group stream got both', () => inGroup.got.length === 2);
    expect(inGroup.got.map((e) => (e.object.value as Task).groupId)).to.deep.equal([groupId, groupId]);
  });

  it('a stream resumed after the last revision it got misses nothing and repeats nothing', async () => {
    m = await startManagerRpc();
    // (A store's revision starts at 0, which would mean "from now on".)
    await m.committer.write('meta/start', new Uint8Array([1]));
    const from = m.cluster.events.latestRevision();
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push((await m.client.runTask({ spec: { argv: ['true'], constraints: { nowhere: 'true' } } })).task!.id);
    const first = m.client.watchEvents({ afterRevision: from });
    const head = collect(first);
    await until('three arrived', () => head.got.length >= 3);
    first.cancel();
    const seen = head.got.slice(0, 3);
    const rest = collect(m.client.watchEvents({ afterRevision: seen[2]!.revision }));
    await until('the rest arrived', () => rest.got.length >= 3);
    expect([...seen, ...rest.got].map((e) => e.object.value!.id)).to.deep.equal(ids);
  });

  it('refuses a revision older than its history with OUT_OF_RANGE', async () => {
    m = await startManagerRpc({ events: { maxEvents: 2 } });
    await m.committer.write('meta/start', new Uint8Array([1]));
    const from = m.cluster.events.latestRevision();
    for (let i = 0; i < 4; i++) await m.client.runTask({ spec: { argv: ['true'], constraints: { nowhere: 'true' } } });
    const s = collect(m.client.watchEvents({ afterRevision: from }));
    await until('refused', () => s.state.ended);
    expect(s.state.err?.code).to.equal(grpc.status.OUT_OF_RANGE);
    expect(s.state.err?.details).to.match(/oldest event it holds has revision \d+/);
  });

  it('cuts off a client that does not read once the events it needs next have left the history; it holds whole revisions', async () => {
    m = await startManagerRpc({ events: { maxEvents: 100 } });
    await m.committer.flush();
    // A raw HTTP/2 stream left paused: unlike grpc-js's client, it takes nothing off the socket
    // while paused, so flow control stops the manager's writes as a stalled reader's would.
    const port = Number(m.client.raw.getChannel().getTarget().split(':').pop());
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      const req = session.request({ ':method': 'POST', ':path': '/schedapi.v1.ManagementService/WatchEvents', 'content-type': 'application/grpc', te: 'trailers' });
      const body = toBinary(WatchEventsRequestSchema, create(WatchEventsRequestSchema, { tasks: true }));
      const frame = Buffer.alloc(5 + body.length);
      frame.writeUInt32BE(body.length, 1);
      frame.set(body, 5);
      req.end(frame);
      req.pause();
      let trailers: http2.IncomingHttpHeaders | undefined;
      req.on('trailers', (h) => (trailers = h));
      await until('the stream listens', () => m.cluster.events.streams === 1);
      const tail = new Uint8Array(8 * 1024);
      for (let batch = 0; m.cluster.events.streams > 0; batch++) {
        if (batch > 2000) throw new Error('never cut off');
        await Promise.all(Array.from({ length: 10 }, (_, i) => m.committer.write(taskKey(`t${batch}-${i}`), task(`t${batch}-${i}`, { stdoutTail: tail }))));
      }
      // Reading again, it gets what was written before the cut, then the status.
      const chunks: Buffer[] = [];
      req.on('data', (d: Buffer) => chunks.push(d));
      req.resume();
      await new Promise((resolve) => req.on('close', resolve));
      expect(trailers?.['grpc-status']).to.equal(String(grpc.status.RESOURCE_EXHAUSTED));
      const data = Buffer.concat(chunks);
      const perRevision = new Map<bigint, number>();
      for (let at = 0; at < data.length; ) {
        const len = data.readUInt32BE(at + 1);
        const e = fromBinary(WatchEventsResponseSchema, data.subarray(at + 5, at + 5 + len));
        perRevision.set(e.revision, (perRevision.get(e.revision) ?? 0) + 1);
        at += 5 + len;
      }
      expect(perRevision.size).to.be.greaterThan(0);
      // Each batch of ten was one txn: the client has every change of each revision it heard of.
      expect([...perRevision.values()].every((n) => n === 10)).to.equal(true);
    } finally {
      session.close();
    }
  });
});
