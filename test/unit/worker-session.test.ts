import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import { pino } from 'pino';
import { ConnectResponseSchema, FinishedSchema } from '../../proto/gen/schedapi/v1/worker_pb.js';
import { Executor, REAPED_ERROR } from '../../worker-node/src/executor.js';
import { detectNodeInfo } from '../../worker-node/src/node-info.js';
import { JOURNAL, Outbox, pendingOnDisk } from '../../worker-node/src/outbox.js';
import { FakeManager } from '../support/fake-manager.js';
import { Session, type SessionOptions } from '../../worker-node/src/session.js';


describe('worker session', function () {
  let dir: string;
  let executor: Executor;
  let outbox: Outbox | undefined;
  let session: Session | undefined;
  const managers: FakeManager[] = [];
  const logger = pino({ level: 'silent' });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'worker-session-'));
    executor = new Executor({ dataDir: dir, workerId: randomUUID() });
  });
  afterEach(async () => {
    await session?.stop('test over');
    session = undefined;
    await executor.stopAll(0);
    await outbox?.flush();
    outbox = undefined;
    for (const m of managers.splice(0)) m.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function connect(port = 0, extra: Partial<SessionOptions> = {}): Promise<{ manager: FakeManager; port: number }> {
    const manager = new FakeManager();
    managers.push(manager);
    const bound = await manager.listen(port);
    // Opened with the session, so what a test put in the outbox before plays a previous run's leftovers.
    outbox ??= new Outbox(dir);
    session ??= new Session({
      managers: [`127.0.0.1:${bound}`],
      token: 'secret',
      workerId: 'w-1',
      node: detectNodeInfo({ labels: { zone: 'a' } }),
      executor,
      outbox,
      logger,
      reconnectIntervalMs: 100,
      cancelGraceMs: 1000,
      ...extra,
    });
    return { manager, port: bound };
  }

  it('says Hello, answers Ping, runs a task and keeps its result until acknowledged', async () => {
    const { manager } = await connect();
    session!.start();
    const hello = await manager.next('hello');
    expect(hello.workerId).to.equal('w-1');
    expect(hello.token).to.equal('secret');
    expect(hello.labels.zone).to.equal('a');
    expect(hello.capacity!.millicpu > 0n).to.equal(true);
    manager.send({ case: 'welcome', value: { sessionId: 's1', pingIntervalMs: 1000 } });
    manager.send({ case: 'ping', value: { seq: 7n } });
    const pong = await manager.next('pong');
    expect(pong.seq).to.equal(7n);
    // This machine's load by default (load1 is 0 where the OS has no load average).
    expect(pong.load1).to.be.at.least(0);
    expect(pong.memoryFreeBytes > 0n).to.equal(true);

    manager.send({ case: 'startTask', value: { taskId: 't1', attempt: 1, spec: { argv: ['sh', '-c', 'sleep 0.3; echo hi; exit 3'] } } });
    // A new start is answered by Started itself (it implies Accepted).
    const started = await manager.next('started');
    expect(started.task!.taskId).to.equal('t1');
    expect(started.pid).to.be.greaterThan(0);
    expect(manager.received.filter((m) => m.msg.case === 'accepted')).to.deep.equal([]);
    const finished = await manager.next('finished');
    expect(finished.exitCode).to.equal(3);
    expect(Buffer.from(finished.stdoutTail).toString()).to.equal('hi\n');
    expect(session!.unacknowledged).to.equal(1);
    // Saved on disk (while it was being sent) until acknowledged.
    await waitUntil(() => [...pendingOnDisk(join(dir, 'outbox'))].join() === 't1.1');
    manager.send({ case: 'finishedAck', value: { task: { taskId: 't1', attempt: 1 } } });
    manager.send({ case: 'ping', value: { seq: 8n } });
    await manager.next('pong');
    expect(session!.unacknowledged).to.equal(0);
    expect(pendingOnDisk(join(dir, 'outbox')).size).to.equal(0);
  });

  it('reports a task that ends within the Started delay by its Finished alone, which names its pid and start', async () => {
    // A long delay, so that "quick" surely ends within it however slow this machine is.
    const { manager } = await connect(0, { startedDelayMs: 2000 });
    session!.start();
    await manager.next('hello');
    manager.send({ case: 'welcome', value: { sessionId: 's1', pingIntervalMs: 0 } });
    const release = join(dir, 'release-slow');
    manager.send({ case: 'startTask', value: { taskId: 'quick', attempt: 1, spec: { argv: ['true'] } } });
    manager.send({
      case: 'startTask',
      value: { taskId: 'slow', attempt: 1, spec: { argv: ['sh', '-c', `while [ ! -e ${release} ]; do sleep 0.02; done`] } },
    });
    const quick = await manager.next('finished');
    expect(quick.task!.taskId).to.equal('quick');
    expect(quick.pid).to.be.greaterThan(0);
    expect(quick.startedUnixMs > 0n).to.equal(true);
    // "slow" outlives the delay: its Started comes, and only then does the test let it end.
    expect((await manager.next('started', 15_000)).task!.taskId).to.equal('slow');
    mkdirSync(release);
    expect((await manager.next('finished')).task!.taskId).to.equal('slow');
    const started = manager.received.filter((m) => m.msg.case === 'started').map((m) => (m.msg.value as { task: { taskId: string } }).task.taskId);
    expect(started).to.deep.equal(['slow']);
    // quick spawned at once, unannounced; slow came in the same turn and waited for the next (start-pacer.ts): accepted at once.
    const accepted = manager.received.filter((m) => m.msg.case === 'accepted').map((m) => (m.msg.value as { task: { taskId: string } }).task.taskId);
    expect(accepted.filter((id) => id !== 'slow')).to.deep.equal([]);
  });

  it('a burst of offers spawns one per turn: the waiting ones are accepted at once, and one cancelled while it waits never runs', async () => {
    const { manager } = await connect(0, { startedDelayMs: 0 });
    session!.start();
    await manager.next('hello');
    manager.send({ case: 'welcome', value: { sessionId: 's1', pingIntervalMs: 0 } });
    const marks = join(dir, 'burst');
    mkdirSync(marks);
    const ids = Array.from({ length: 20 }, (_, i) => `b${i}`);
    for (const taskId of ids) manager.send({ case: 'startTask', value: { taskId, attempt: 1, spec: { argv: ['sh', '-c', `touch ${join(marks, taskId)}`] } } });
    manager.send({ case: 'cancelTask', value: { task: { taskId: 'b19', attempt: 1 }, reason: 'test' } });
    const finished = new Map<string, { signal: string; pid: number }>();
    while (finished.size < ids.length) {
      const f = await manager.next('finished');
      finished.set(f.task!.taskId, { signal: f.signal, pid: f.pid });
    }
    // The cancelled one ended as a process killed at once would, with no process: its file was never made.
    expect(finished.get('b19')).to.deep.equal({ signal: 'SIGTERM', pid: 0 });
    expect(readdirSync(marks).sort()).to.deep.equal(ids.slice(0, 19).sort());
    const accepted = new Set(manager.received.filter((m) => m.msg.case === 'accepted').map((m) => (m.msg.value as { task: { taskId: string } }).task.taskId));
    expect(accepted.size).to.be.greaterThan(0);
    expect(accepted.has(ids[0]!)).to.equal(false); // the first of the burst spawned at once
  });

  it('rejects an empty command and a cancel of an unknown attempt', async () => {
    const { manager } = await connect();
    session!.start();
    await manager.next('hello');
    manager.send({ case: 'welcome', value: { sessionId: 's1', pingIntervalMs: 0 } });
    manager.send({ case: 'startTask', value: { taskId: 't2', attempt: 1, spec: { argv: [] } } });
    expect((await manager.next('rejected')).reason).to.match(/argv/);
    manager.send({ case: 'startTask', value: { taskId: '../x', attempt: 1, spec: { argv: ['true'] } } });
    expect((await manager.next('rejected')).reason).to.match(/task_id/);
    manager.send({ case: 'cancelTask', value: { task: { taskId: 'nope', attempt: 1 }, reason: 'x' } });
    expect((await manager.next('rejected')).reason).to.match(/not running/);
  });

  it('rejects an offer that would take it over its own capacity, and accepts it once room is free', async () => {
    const { manager } = await connect(0, { node: detectNodeInfo({ capacity: { cpu: 1, memory: 256 * 2 ** 20 }, labels: {} }) });
    session!.start();
    await manager.next('hello');
    manager.send({ case: 'welcome', value: { sessionId: 's1', pingIntervalMs: 0 } });
    const spec = (cpu: bigint, mem: bigint, argv: string[]) => ({ argv, resources: { millicpu: cpu, memoryBytes: mem } });
    manager.send({ case: 'startTask', value: { taskId: 'big', attempt: 1, spec: spec(800n, 128n * 2n ** 20n, ['sleep', '30']) } });
    await manager.next('started');
    manager.send({ case: 'startTask', value: { taskId: 'cpu', attempt: 1, spec: spec(300n, 1n, ['true']) } });
    expect((await manager.next('rejected')).reason).to.equal('over capacity: cpu 800m in use + 300m requested > 1000m');
    manager.send({ case: 'startTask', value: { taskId: 'mem', attempt: 1, spec: spec(100n, 200n * 2n ** 20n, ['true']) } });
    expect((await manager.next('rejected')).reason).to.match(/^over capacity: memory 134217728 bytes in use/);
    manager.send({ case: 'cancelTask', value: { task: { taskId: 'big', attempt: 1 }, reason: 'x', graceMs: 100 } });
    await manager.next('finished');
    manager.send({ case: 'startTask', value: { taskId: 'cpu', attempt: 2, spec: spec(300n, 1n, ['true']) } });
    expect((await manager.next('finished')).task).to.deep.include({ taskId: 'cpu', attempt: 2 });
  });

  it('reports running tasks after a reconnect and replays unacknowledged results', async () => {
    const first = await connect();
    session!.start();
    await first.manager.next('hello');
    first.manager.send({ case: 'welcome', value: { sessionId: 's1', pingIntervalMs: 0 } });
    first.manager.send({ case: 'startTask', value: { taskId: 'long', attempt: 2, spec: { argv: ['sleep', '30'] } } });
    await first.manager.next('started');
    // "quick" runs until the test lets it finish, which it does only once the manager is gone.
    const release = join(dir, 'release-quick');
    first.manager.send({
      case: 'startTask',
      value: { taskId: 'quick', attempt: 1, spec: { argv: ['sh', '-c', `while [ ! -e ${release} ]; do sleep 0.02; done; exit 5`] } },
    });
    await first.manager.next('started');
    const quickDone = executor.wait('quick', 1);
    first.manager.stop(); // the manager dies while "quick" still runs
    await waitUntil(() => !session!.connected, 15_000);

    mkdirSync(release); // "quick" finishes while disconnected
    expect((await quickDone)!.exitCode).to.equal(5);
    await outbox!.flush();
    expect(pendingOnDisk(join(dir, 'outbox')).has('quick.1')).to.equal(true);
    const second = await connect(first.port);
    const hello = await second.manager.next('hello');
    expect(hello.running.map((t) => `${t.taskId}:${t.attempt}`)).to.deep.equal(['long:2']);
    second.manager.send({ case: 'welcome', value: { sessionId: 's2', pingIntervalMs: 0 } });
    const replayed = await second.manager.next('finished');
    expect(replayed.task!.taskId).to.equal('quick');
    expect(replayed.exitCode).to.equal(5);

    // A repeated offer of the running attempt is answered, not run twice.
    const pid = executor.get('long')!.pid;
    second.manager.send({ case: 'startTask', value: { taskId: 'long', attempt: 2, spec: { argv: ['sleep', '30'] } } });
    await second.manager.next('accepted');
    expect((await second.manager.next('started')).pid).to.equal(pid);
    second.manager.send({ case: 'startTask', value: { taskId: 'long', attempt: 3, spec: { argv: ['sleep', '30'] } } });
    expect((await second.manager.next('rejected')).reason).to.match(/attempt 2/);

    second.manager.send({ case: 'cancelTask', value: { task: { taskId: 'long', attempt: 2 }, reason: 'operator' } });
    const cancelled = await second.manager.next('finished');
    expect(cancelled.signal).to.equal('SIGTERM');
    expect(cancelled.exitCode).to.equal(143);
  });

  it('resends what a previous run left in the outbox after Welcome, and nothing once acknowledged', async () => {
    // The previous worker process: one real result and one for an attempt killed when it restarted.
    const previous = new Outbox(dir);
    await previous.add(create(FinishedSchema, { task: { taskId: 'done', attempt: 1 }, exitCode: 4, stdoutTail: Buffer.from('x\n') }));
    await previous.add(create(FinishedSchema, { task: { taskId: 'reaped', attempt: 2 }, exitCode: 137, signal: 'SIGKILL', error: REAPED_ERROR }));

    const first = await connect();
    expect(session!.unacknowledged).to.equal(2);
    session!.start();
    await first.manager.next('hello');
    expect(first.manager.received.filter((m) => m.msg.case === 'finished')).to.deep.equal([]); // not before Welcome
    first.manager.send({ case: 'welcome', value: { sessionId: 's1', pingIntervalMs: 0 } });
    const resent = [await first.manager.next('finished'), await first.manager.next('finished')];
    const byId = new Map(resent.map((f) => [f.task!.taskId, f]));
    expect(byId.get('done')!.exitCode).to.equal(4);
    expect(Buffer.from(byId.get('done')!.stdoutTail).toString()).to.equal('x\n');
    expect(byId.get('reaped')!).to.include({ exitCode: 137, signal: 'SIGKILL', error: REAPED_ERROR });

    // A repeated offer of a finished attempt gets its result, not a second run.
    first.manager.send({ case: 'startTask', value: { taskId: 'done', attempt: 1, spec: { argv: ['sh', '-c', 'exit 9'] } } });
    await first.manager.next('accepted');
    expect((await first.manager.next('finished')).exitCode).to.equal(4);
    expect(executor.size).to.equal(0);

    // Only "done" is acknowledged before the manager goes away.
    first.manager.send({ case: 'finishedAck', value: { task: { taskId: 'done', attempt: 1 } } });
    first.manager.send({ case: 'ping', value: { seq: 1n } });
    await first.manager.next('pong');
    expect(session!.unacknowledged).to.equal(1);
    // Acks are not written: the journal keeps "done" until nothing is pending (a restart would resend it, harmlessly).
    expect([...pendingOnDisk(join(dir, 'outbox'))].sort()).to.deep.equal(['done.1', 'reaped.2']);
    first.manager.stop();

    const second = await connect(first.port);
    await second.manager.next('hello');
    second.manager.send({ case: 'welcome', value: { sessionId: 's2', pingIntervalMs: 0 } });
    expect((await second.manager.next('finished')).task!.taskId).to.equal('reaped');
    second.manager.send({ case: 'finishedAck', value: { task: { taskId: 'reaped', attempt: 2 } } });
    second.manager.send({ case: 'ping', value: { seq: 2n } });
    await second.manager.next('pong');
    expect(session!.unacknowledged).to.equal(0);
    second.manager.stop();

    // After the next reconnect nothing is resent: Welcome, then straight to Pong.
    const third = await connect(first.port);
    await third.manager.next('hello');
    third.manager.send({ case: 'welcome', value: { sessionId: 's3', pingIntervalMs: 0 } });
    third.manager.send({ case: 'ping', value: { seq: 3n } });
    await third.manager.next('pong');
    expect(third.manager.received.map((m) => m.msg.case)).to.deep.equal(['hello', 'pong']);
    // Nor after a worker restart.
    expect(new Outbox(dir).size).to.equal(0);
  });

  it('sends the live load and running task count in every Pong', async () => {
    let load1 = 0.25;
    const { manager } = await connect(0, { load: () => ({ load1, memoryFreeBytes: 3n * 2n ** 30n }) });
    session!.start();
    await manager.next('hello');
    manager.send({ case: 'welcome', value: { sessionId: 's1', pingIntervalMs: 0 } });
    manager.send({ case: 'ping', value: { seq: 1n } });
    expect(await manager.next('pong')).to.deep.include({ seq: 1n, runningTasks: 0, load1: 0.25, memoryFreeBytes: 3n * 2n ** 30n });

    manager.send({ case: 'startTask', value: { taskId: 'busy', attempt: 1, spec: { argv: ['sleep', '30'] } } });
    await manager.next('started');
    load1 = 1.5;
    manager.send({ case: 'ping', value: { seq: 2n } });
    expect(await manager.next('pong')).to.deep.include({ seq: 2n, runningTasks: 1, load1: 1.5 });
  });

  it('kills its tasks when cut off past the orphan timeout, and reports them lost after the next Welcome', async () => {
    const first = await connect();
    session!.start();
    await first.manager.next('hello');
    first.manager.send({ case: 'welcome', value: { sessionId: 's1', pingIntervalMs: 0, orphanTimeoutMs: 600 } });
    const lastSent = Date.now(); // the worker hears this (its last message) no earlier
    first.manager.send({ case: 'startTask', value: { taskId: 'orphan', attempt: 1, spec: { argv: ['sh', '-c', 'sleep 30 & wait'] } } });
    await first.manager.next('started');
    const waited = executor.wait('orphan', 1);
    first.manager.stop();
    const r = (await waited)!;
    expect(Date.now() - lastSent).to.be.at.least(600 - 5); // the clocks differ (wall, monotonic) by a hair
    expect(r).to.include({ lost: true, signal: 'SIGKILL', exitCode: 137 });
    expect(r.error).to.match(/^worker lost the manager: nothing heard for \d+ms \(orphan timeout 600ms\); task killed$/);

    const second = await connect(first.port);
    expect((await second.manager.next('hello')).running).to.deep.equal([]);
    second.manager.send({ case: 'welcome', value: { sessionId: 's2', pingIntervalMs: 0, orphanTimeoutMs: 600 } });
    const f = await second.manager.next('finished');
    expect(f.task).to.deep.include({ taskId: 'orphan', attempt: 1 });
    expect(f).to.include({ lost: true, startFailed: false, signal: 'SIGKILL', exitCode: 137, error: r.error });
  });

  it('redials at least every quarter of the orphan timeout, so a manager back in time keeps the tasks', async function () {
    this.timeout(60_000);
    const lines: string[] = [];
    const captured = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    const lostCount = () => lines.filter((l) => l.includes('lost connection to manager')).length;
    // Without the cap (a quarter of 6 s: 1.5 s) the first redial would come 30-60 s after the
    // loss, long past the deadline; the bounds below are far from both.
    const first = await connect(0, { reconnectIntervalMs: 60_000, reconnectMaxMs: 60_000, logger: captured });
    session!.start();
    await first.manager.next('hello');
    first.manager.send({ case: 'welcome', value: { sessionId: 's1', pingIntervalMs: 0, orphanTimeoutMs: 6000 } });
    const lastSent = Date.now();
    first.manager.send({ case: 'startTask', value: { taskId: 'keep', attempt: 1, spec: { argv: ['sleep', '30'] } } });
    await first.manager.next('started');
    const pid = executor.get('keep')!.pid;
    first.manager.stop();
    // One redial fails while the manager is away (which must not back the channel off for long either).
    await waitUntil(() => lostCount() >= 2, 15_000);
    const second = await connect(first.port);
    await second.manager.next('hello', 15_000);
    second.manager.send({ case: 'welcome', value: { sessionId: 's2', pingIntervalMs: 0, orphanTimeoutMs: 6000 } });
    second.manager.send({ case: 'ping', value: { seq: 1n } });
    await second.manager.next('pong');
    // Once the first outage's deadline has passed, the task still runs: Welcome stopped the clock.
    await waitUntil(() => Date.now() > lastSent + 6000 + 200, 20_000);
    second.manager.send({ case: 'ping', value: { seq: 2n } });
    expect(await second.manager.next('pong')).to.deep.include({ seq: 2n, runningTasks: 1 });
    expect(executor.get('keep')?.pid).to.equal(pid);
    expect(lines.join('')).to.not.match(/orphan timeout/);
  });

  it('gives up a stream that gets no Welcome and redials', async function () {
    this.timeout(60_000);
    const lines: string[] = [];
    const captured = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    const { manager } = await connect(0, { logger: captured });
    session!.start();
    await manager.next('hello');
    // The manager never answers: after the Welcome timeout (10 s) the worker dials again.
    await manager.next('hello', 30_000);
    expect(manager.calls).to.have.length(2);
    expect(lines.join('')).to.match(/lost connection to manager at [^:]+:\d+: no Welcome for 10000ms/);
    manager.send({ case: 'welcome', value: { sessionId: 's2', pingIntervalMs: 0 } });
    manager.send({ case: 'ping', value: { seq: 1n } });
    expect((await manager.next('pong')).seq).to.equal(1n);
    expect(session!.connected).to.equal(true);
  });

  it('redials a manager that falls silent past five ping intervals (at least 5 s), but not one that keeps talking', async function () {
    this.timeout(60_000);
    const lines: string[] = [];
    const captured = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    const { manager } = await connect(0, { logger: captured });
    session!.start();
    await manager.next('hello');
    manager.send({ case: 'welcome', value: { sessionId: 's1', pingIntervalMs: 100 } });
    // Talking: a ping every 500 ms for 6 s, longer than the silence limit; the stream stays.
    for (let i = 1; i <= 12; i++) {
      manager.send({ case: 'ping', value: { seq: BigInt(i) } });
      expect((await manager.next('pong')).seq).to.equal(BigInt(i));
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(manager.calls).to.have.length(1);
    // Silent: the worker gives the stream up and dials again.
    await manager.next('hello', 30_000);
    expect(manager.calls).to.have.length(2);
    expect(lines.join('')).to.match(/no message from the manager for 5000ms/);
  });

  it('starts the backoff over after a Welcome, and ignores what an old stream still delivers', async function () {
    this.timeout(60_000);
    const lines: string[] = [];
    const captured = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    const lostCount = () => lines.filter((l) => l.includes('lost connection to manager')).length;
    const failures = () => (session as unknown as { failures: number }).failures;
    const streamOf = () => (session as unknown as { stream: EventEmitter | undefined }).stream;
    // Nothing listens at first: redials fail and back off.
    const first = await connect(0, { reconnectIntervalMs: 20, reconnectMaxMs: 60_000, logger: captured });
    first.manager.stop();
    session!.start();
    await waitUntil(() => lostCount() >= 5, 30_000);
    expect(failures()).to.be.at.least(5);
    const second = await connect(first.port);
    await second.manager.next('hello', 30_000);
    const old = streamOf()!;
    second.manager.send({ case: 'welcome', value: { sessionId: 's1', pingIntervalMs: 0 } });
    second.manager.send({ case: 'ping', value: { seq: 1n } });
    await second.manager.next('pong');
    expect(failures(), 'the backoff exponent after a Welcome').to.equal(0);

    // The manager ends the stream: the next dial comes after the base delay again.
    second.manager.calls.at(-1)!.end();
    await second.manager.next('hello', 15_000);
    expect(second.manager.calls).to.have.length(2);
    expect(failures()).to.equal(1);
    const current = streamOf()!;
    expect(current).to.not.equal(old);
    second.manager.send({ case: 'welcome', value: { sessionId: 's2', pingIntervalMs: 0 } });
    second.manager.send({ case: 'ping', value: { seq: 2n } });
    await second.manager.next('pong');

    // Late events of the old stream: an offer, its error and its end change nothing.
    const msg = (m: Parameters<FakeManager['send']>[0]) => create(ConnectResponseSchema, { msg: m });
    old.emit('data', msg({ case: 'startTask', value: { taskId: 'ghost', attempt: 1, spec: { argv: ['sleep', '30'] } } }));
    old.emit('data', msg({ case: 'welcome', value: { sessionId: 'old', pingIntervalMs: 0 } }));
    old.emit('error', Object.assign(new Error('stream reset'), { code: grpc.status.UNAVAILABLE, details: 'stream reset' }));
    old.emit('end');
    second.manager.send({ case: 'ping', value: { seq: 3n } });
    expect((await second.manager.next('pong')).seq).to.equal(3n);
    expect(executor.size).to.equal(0);
    expect(streamOf()).to.equal(current);
    expect(session!.connected).to.equal(true);
    expect(second.manager.calls).to.have.length(2);
    expect(second.manager.received.filter((m) => m.msg.case === 'accepted' || m.msg.case === 'rejected')).to.deep.equal([]);
  });

  it('while leaving, refuses offers and tells every new stream it is leaving', async () => {
    const first = await connect();
    session!.start();
    await first.manager.next('hello');
    first.manager.send({ case: 'welcome', value: { sessionId: 's1', pingIntervalMs: 0 } });
    const deadline = Date.now() + 60_000;
    session!.leave('worker-node received SIGTERM', deadline);
    expect(await first.manager.next('leaving')).to.deep.include({ reason: 'worker-node received SIGTERM', deadlineUnixMs: BigInt(deadline) });
    first.manager.send({ case: 'startTask', value: { taskId: 'late', attempt: 1, spec: { argv: ['true'] } } });
    expect(await first.manager.next('rejected')).to.deep.include({ reason: 'worker is shutting down' });
    expect(executor.size).to.equal(0);
    first.manager.stop();

    const second = await connect(first.port);
    await second.manager.next('hello', 15_000);
    second.manager.send({ case: 'welcome', value: { sessionId: 's2', pingIntervalMs: 0 } });
    expect(await second.manager.next('leaving')).to.deep.include({ reason: 'worker-node received SIGTERM', deadlineUnixMs: BigInt(deadline) });
    second.manager.send({ case: 'startTask', value: { taskId: 'later', attempt: 1, spec: { argv: ['true'] } } });
    expect(await second.manager.next('rejected')).to.deep.include({ reason: 'worker is shutting down' });
    expect(executor.size).to.equal(0);
  });

  it('answers a cancel of an attempt that already finished with its result, and once acknowledged says it does not run', async () => {
    const { manager } = await connect();
    session!.start();
    await manager.next('hello');
    manager.send({ case: 'welcome', value: { sessionId: 's1', pingIntervalMs: 0 } });
    manager.send({ case: 'startTask', value: { taskId: 'done', attempt: 3, spec: { argv: ['sh', '-c', 'echo bye; exit 6'] } } });
    const first = await manager.next('finished');
    expect(first.exitCode).to.equal(6);
    // The manager's CancelTask crossed the result: the worker repeats the result, it does not reject.
    manager.send({ case: 'cancelTask', value: { task: { taskId: 'done', attempt: 3 }, reason: 'cancelled' } });
    const again = await manager.next('finished');
    expect(again).to.deep.include({ exitCode: 6, pid: first.pid });
    expect(Buffer.from(again.stdoutTail).toString()).to.equal('bye\n');
    manager.send({ case: 'finishedAck', value: { task: { taskId: 'done', attempt: 3 } } });
    manager.send({ case: 'cancelTask', value: { task: { taskId: 'done', attempt: 3 }, reason: 'cancelled' } });
    expect(await manager.next('rejected')).to.deep.include({ reason: 'not running on this worker' });
    expect(manager.received.filter((m) => m.msg.case === 'finished')).to.have.length(2);
  });

  it('a result it cannot save to the outbox is still sent, kept in memory and resent after a reconnect until acknowledged', async () => {
    const lines: string[] = [];
    const captured = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    const first = await connect(0, { logger: captured });
    // The disk is full: the outbox's journal now writes to /dev/full (ENOSPC).
    failJournalWrites(join(dir, 'outbox'));
    session!.start();
    await first.manager.next('hello');
    first.manager.send({ case: 'welcome', value: { sessionId: 's1', pingIntervalMs: 0 } });
    first.manager.send({ case: 'startTask', value: { taskId: 'unsaved', attempt: 1, spec: { argv: ['sh', '-c', 'exit 2'] } } });
    expect((await first.manager.next('finished')).exitCode).to.equal(2);
    await outbox!.flush();
    expect(lines.join('')).to.match(/cannot save a task result to the outbox; it is kept in memory only/);
    expect(session!.unacknowledged).to.equal(1);
    expect(pendingOnDisk(join(dir, 'outbox')).size).to.equal(0);
    first.manager.stop();

    const second = await connect(first.port);
    await second.manager.next('hello', 15_000);
    second.manager.send({ case: 'welcome', value: { sessionId: 's2', pingIntervalMs: 0 } });
    const resent = await second.manager.next('finished');
    expect(resent.task).to.deep.include({ taskId: 'unsaved', attempt: 1 });
    expect(resent.exitCode).to.equal(2);
    second.manager.send({ case: 'finishedAck', value: { task: { taskId: 'unsaved', attempt: 1 } } });
    second.manager.send({ case: 'ping', value: { seq: 1n } });
    await second.manager.next('pong');
    expect(session!.unacknowledged).to.equal(0);
  });

  it('says Goodbye on stop', async () => {
    const { manager } = await connect();
    session!.start();
    await manager.next('hello');
    manager.send({ case: 'welcome', value: { sessionId: 's1', pingIntervalMs: 0 } });
    manager.send({ case: 'ping', value: { seq: 1n } });
    await manager.next('pong');
    await session!.stop('bye');
    expect((await manager.next('goodbye')).reason).to.equal('bye');
  });
});

async function waitUntil(check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Points this process's open fd of the outbox journal in dir at /dev/full, so its writes fail as on a full disk. */
function failJournalWrites(dir: string): void {
  const journal = join(dir, JOURNAL);
  const fd = readdirSync('/proc/self/fd').map(Number).find((n) => {
    try {
      return readlinkSync(`/proc/self/fd/${n}`) === journal;
    } catch {
      return false;
    }
  });
  if (fd === undefined) throw new Error(`no open fd of ${journal}`);
  closeSync(fd);
  const full = openSync('/dev/full', 'a'); // the lowest free number: the one just closed
  if (full !== fd) throw new Error(`/dev/full got fd ${full}, not ${fd}`);
}
