// schedctl events and tasks ls --watch against a fake manager that scripts
// WatchEvents: the lines, resuming after a lost stream, and a gap (OUT_OF_RANGE).
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import { WatchEventsResponseSchema, type WatchEventsRequest } from '../../proto/gen/schedapi/v1/management_pb.js';
import { TaskSchema, TaskState, WorkerSchema, WorkerState } from '../../proto/gen/schedapi/v1/types_pb.js';
import { eventLine } from '../../schedctl/src/commands/events.js';
import { FakeManagement, taskId, type Handlers } from '../support/fake-management.js';
import { until } from '../support/until.js';

const T0 = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
const taskEvent = (revision: bigint, task: Parameters<typeof create<typeof TaskSchema>>[1]) =>
  create(WatchEventsResponseSchema, { revision, unixMs: BigInt(T0), object: { case: 'task', value: create(TaskSchema, task) } });

/** A fake whose WatchEvents calls are recorded and answered by `script(call, n)` (n counts calls from 0). */
async function fakeWith(script: (call: grpc.ServerWritableStream<WatchEventsRequest, unknown>, n: number) => void) {
  const requests: WatchEventsRequest[] = [];
  const watchEvents: Handlers['watchEvents'] = (call) => {
    requests.push(call.request);
    script(call as grpc.ServerWritableStream<WatchEventsRequest, unknown>, requests.length - 1);
  };
  const fake = new FakeManagement({ watchEvents });
  await fake.start();
  return { fake, requests };
}

/** Runs schedctl until `done(out, err)` holds, then Ctrl-C (the process's SIGINT listeners: the command's own). */
async function runUntil(address: string, args: string[], done: (out: string, err: string) => boolean) {
  const r = { code: -1, out: '', err: '' };
  const { runCli } = await import('../../schedctl/src/cli.js');
  const running = runCli(['--manager', address, ...args], { out: (s) => void (r.out += s), err: (s) => void (r.err += s), isTTY: false, env: {} });
  await until('the expected output', () => done(r.out, r.err));
  process.emit('SIGINT');
  r.code = await running;
  return r;
}

describe('schedctl events', () => {
  let fake: FakeManagement | undefined;
  afterEach(() => fake?.stop());

  it('prints each change as a line: time, revision, kind, short id, state, detail', () => {
    const id = '0190b6b2-7c3d-7000-8000-00001a2b3c4d';
    expect(eventLine(taskEvent(42n, { id, state: TaskState.PENDING, pendingReason: '0/1 workers fit: 1 insufficient memory' }))).to.equal(
      '2026-01-02T03:04:05.678Z        42  task    1a2b3c4d  pending       0/1 workers fit: 1 insufficient memory',
    );
    expect(eventLine(taskEvent(43n, { id, state: TaskState.DONE, exitCode: 3 }))).to.match(/ 43 {2}task {4}1a2b3c4d {2}done {10}exit 3$/);
    expect(eventLine(taskEvent(44n, { id, state: TaskState.DEAD, deadReason: 'cancelled' }))).to.match(/dead {10}cancelled$/);
    const worker = create(WatchEventsResponseSchema, {
      revision: 45n,
      unixMs: BigInt(T0),
      object: { case: 'worker', value: create(WorkerSchema, { id: 'f00d', name: 'build-1', address: '10.0.0.5:4000', state: WorkerState.DISCONNECTED }) },
    });
    expect(eventLine(worker)).to.match(/ 45 {2}worker {2}build-1 {3}disconnected {2}10\.0\.0\.5:4000 0 tasks$/);
  });

  it('streams with the filters asked for, one JSON object per line with -o json, and exits 130 on Ctrl-C', async () => {
    const id = taskId();
    const f = await fakeWith((call) => {
      call.write(taskEvent(7n, { id, state: TaskState.PENDING }));
      call.write(taskEvent(8n, { id, state: TaskState.SCHEDULED, workerId: 'w1' }));
    });
    fake = f.fake;
    const r = await runUntil(f.fake.address, ['-o', 'json', 'events', '--tasks', '--group', 'g1', '--after-revision', '6'], (out) => out.split('\n').length > 2);
    expect(r.code).to.equal(130);
    expect(f.requests[0]).to.include({ afterRevision: 6n, tasks: true, workers: false, groupId: 'g1' });
    const lines = r.out.trimEnd().split('\n').map((l) => JSON.parse(l) as { revision: string; task: { state: string } });
    expect(lines.map((l) => [l.revision, l.task.state])).to.deep.equal([
      ['7', 'TASK_STATE_PENDING'],
      ['8', 'TASK_STATE_SCHEDULED'],
    ]);
  });

  it('resumes after the last revision printed when the stream is lost (a restart or a failover)', async () => {
    const id = taskId();
    const f = await fakeWith((call, n) => {
      if (n === 0) {
        call.write(taskEvent(11n, { id, state: TaskState.PENDING }));
        setImmediate(() => call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'management node is shutting down' }));
      } else call.write(taskEvent(12n, { id, state: TaskState.SCHEDULED }));
    });
    fake = f.fake;
    const r = await runUntil(f.fake.address, ['events'], (out) => out.includes(' 12  task'));
    expect(f.requests.map((q) => q.afterRevision)).to.deep.equal([0n, 11n]);
    expect(r.out.trimEnd().split('\n')).to.have.length(2);
    expect(r.err).to.equal('');
  });

  it('says on stderr that events were missed when the manager no longer holds them, and goes on from now', async () => {
    const f = await fakeWith((call, n) => {
      if (n === 0) call.emit('error', { code: grpc.status.OUT_OF_RANGE, details: 'the oldest revision held is 900' });
      else call.write(taskEvent(950n, { id: taskId(), state: TaskState.PENDING }));
    });
    fake = f.fake;
    const r = await runUntil(f.fake.address, ['events', '--after-revision', '5'], (out) => out.includes(' 950  task'));
    expect(f.requests.map((q) => q.afterRevision)).to.deep.equal([5n, 0n]);
    expect(r.err).to.equal(
      'schedctl: the management node no longer holds the events after revision 5 (the oldest revision held is 900); some were missed, going on from now\n',
    );
  });
});

describe('schedctl tasks ls --watch', () => {
  let fake: FakeManagement | undefined;
  afterEach(() => fake?.stop());

  it("prints the listing, then a line per change of a matching task, from the listing's revision", async () => {
    const listed = taskId();
    const other = taskId();
    let seen: (() => void) | undefined;
    const f = await fakeWith((call) => {
      seen = () => {
        call.write(taskEvent(201n, { id: listed, state: TaskState.SCHEDULED, workerId: 'w1' }));
        call.write(taskEvent(202n, { id: other, state: TaskState.DONE }));
      };
    });
    fake = f.fake;
    f.fake.set({ id: listed, state: TaskState.PENDING, spec: { argv: ['sleep', '9'] } });
    f.fake.revision = 200n;
    const running = runUntil(f.fake.address, ['tasks', 'ls', '--watch', '--state', 'pending'], (out) => out.includes(' 201  task'));
    await until('the event stream is open', () => seen !== undefined);
    seen!();
    const r = await running;
    expect(f.requests[0]).to.include({ afterRevision: 200n, tasks: true });
    const lines = r.out.trimEnd().split('\n');
    expect(lines[0]).to.match(/^ID\s+STATE/);
    expect(lines[1]).to.include('pending');
    // The listed task left the listing (it is no longer pending): said once; the other task never matched.
    expect(lines.slice(2)).to.have.length(1);
    expect(lines[2]).to.match(new RegExp(` 201  task    ${listed.slice(-8)}  scheduled`));
  });
});
