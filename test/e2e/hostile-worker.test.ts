// Hostile workers against the real manager binary: a real worker-node runs `sleep 300` while fake
// workers send what no honest worker would. After each attack the manager must still be up, the
// real worker still connected on its own session with its task, stored tasks unchanged, and a
// new task must still run to done.
//
//   node_modules/.bin/mocha test/e2e/hostile-worker.test.ts
import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { createServiceClient, type ServiceClient } from '../../common/grpc-service.js';
import { ManagementService } from '../../proto/gen/schedapi/v1/management_pb.js';
import { TaskState, WorkerState, type Task } from '../../proto/gen/schedapi/v1/types_pb.js';
import { freePorts } from '../support/etcd.js';
import { FakeFleet, FakeWorker, workerClient, type FakeWorkerOptions, type StreamEnd } from '../support/fake-worker.js';
import { BIN, startDaemon, waitFor, writeYaml, type Daemon } from '../support/processes.js';

const ROOT_BINS = process.env.SCHED_BIN_ROOT;
const MANAGER = ROOT_BINS ? join(ROOT_BINS, 'management-node/bin/management-node') : BIN.manager;
const WORKER = ROOT_BINS ? join(ROOT_BINS, 'worker-node/bin/worker-node') : BIN.worker;
const HELLO_TIMEOUT_MS = 2000;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const MiB = 1024 * 1024;

type Client = ServiceClient<(typeof ManagementService)['method']>;

const vmRss = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
/** What an attack must not change about a stored task. */
const snapshot = (t: Task) => ({
  ...{ state: TaskState[t.state], workerId: t.workerId, attempt: t.attempt, exitCode: t.exitCode, signal: t.signal, deadReason: t.deadReason },
  ...{ finishedUnixMs: String(t.finishedUnixMs), stdoutTail: Buffer.from(t.stdoutTail).toString('hex') },
});

describe('e2e: hostile workers cannot hurt the manager, a real worker or stored tasks', function () {
  this.timeout(180_000);
  let dir: string;
  let port: number;
  let manager: Daemon;
  let worker: Daemon | undefined;
  let client: Client;
  let fleet: FakeFleet;
  let helloTimeoutAccepted = true;
  let realId = '';
  let realConnectedAt = 0n;
  let sleepTask: Task;
  const known = new Map<string, ReturnType<typeof snapshot>>();
  const daemons: Daemon[] = [];
  let seq = 0;

  const run = async (spec: { argv: string[]; constraints?: Record<string, string> }) => (await client.runTask({ spec }, { deadlineMs: 10_000 })).task!;
  const getTask = async (id: string) => (await client.getTask({ id }, { deadlineMs: 10_000 })).task!;
  const waitState = (id: string, state: TaskState, ms = 20_000) =>
    waitFor(`task ${id} ${TaskState[state]}`, async () => ((await getTask(id)).state === state ? getTask(id) : undefined), ms, 100);
  const realConnected = () =>
    waitFor('real worker connected', async () => {
      const r = (await client.getWorker({ id: realId }, { deadlineMs: 2000 })).worker!;
      return r.state === WorkerState.CONNECTED && r;
    });
  const fake = (name: string, opts: FakeWorkerOptions = {}): FakeWorker => fleet.add(`${name}-${++seq}`, { reconnect: false, ...opts });

  function startManager(helloTimeout: boolean): Daemon {
    const yaml = writeYaml(
      join(dir, 'manager.yaml'),
      `listen: 127.0.0.1:${port}\nstore: {type: embedded, path: ${join(dir, 'store')}}\nping_interval: 500ms\nack_timeout: 1s\nreconnect_grace: 30s\n` +
        `${helloTimeout ? `hello_timeout: ${HELLO_TIMEOUT_MS}ms\n` : ''}log_level: info\n`,
    );
    const d = startDaemon(MANAGER, ['-f', yaml], join(dir, `manager-${daemons.length}.log`));
    daemons.push(d);
    return d;
  }

  before(async () => {
    for (const bin of [MANAGER, WORKER]) if (!existsSync(bin)) throw new Error(`${bin} missing: run node build.mjs first`);
    dir = mkdtempSync(join(tmpdir(), 'sched-hostile-'));
    [port] = (await freePorts(1)) as [number];
    const backoff = { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 500 };
    client = createServiceClient(ManagementService, `127.0.0.1:${port}`, grpc.credentials.createInsecure(), backoff);
    manager = startManager(true);
    const up = await waitFor('manager up or exited', async () => {
      if (manager.child.exitCode !== null) return 'exited';
      return (await client.status({}, { deadlineMs: 1000 })) && 'up';
    }, 20_000);
    if (up === 'exited') {
      // The key is being added; without it the rest still runs and the hello-timeout test says why it fails.
      if (!/hello_timeout/.test(manager.log())) throw new Error(`manager did not start:\n${manager.log()}`);
      console.log(`      note: the manager refuses hello_timeout (${manager.log().trim().split('\n').pop()}); running without it`);
      helloTimeoutAccepted = false;
      manager = startManager(false);
      await waitFor('manager up', () => client.status({}, { deadlineMs: 1000 }), 20_000);
    }
    const wyaml = writeYaml(
      join(dir, 'worker.yaml'),
      `manager: 127.0.0.1:${port}\ndata_dir: ${join(dir, 'worker')}\nreconnect_interval: 200ms\nlabels: {real: "yes"}\ncancel_grace: 1s\nshutdown_timeout: 1s\n`,
    );
    worker = startDaemon(WORKER, ['-f', wyaml], join(dir, 'worker.log'));
    daemons.push(worker);
    realId = await waitFor('worker id', () => existsSync(join(dir, 'worker', 'worker-id')) && readFileSync(join(dir, 'worker', 'worker-id'), 'utf8').trim());
    realConnectedAt = (await realConnected()).connectedUnixMs;
    fleet = new FakeFleet({ address: `127.0.0.1:${port}`, count: 0 });
    sleepTask = await waitState((await run({ argv: ['sleep', '300'], constraints: { real: 'yes' } })).id, TaskState.SCHEDULED);
    for (const n of [1, 2]) {
      const t = await waitState((await run({ argv: ['echo', `known-${n}`], constraints: { real: 'yes' } })).id, TaskState.DONE);
      known.set(t.id, snapshot(t));
    }
    const never = await run({ argv: ['true'], constraints: { nowhere: 'x' } });
    known.set(never.id, snapshot(await getTask(never.id)));
    known.set(sleepTask.id, snapshot(sleepTask));
  });

  after(async () => {
    fleet?.stop();
    if (sleepTask) await client.cancelTask({ ids: [sleepTask.id], graceMs: 100 }, { deadlineMs: 5000 }).catch(() => undefined);
    client?.close();
    for (const d of daemons.reverse()) await d.stop();
    if (dir && !process.env.KEEP_HOSTILE_DIR) rmSync(dir, { recursive: true, force: true });
  });

  /**
   * The invariants every attack must leave intact, as a list of what is broken. A broken one is
   * re-baselined afterwards, so one failure does not fail every later test too.
   */
  async function check(after: string): Promise<string[]> {
    const problems: string[] = [];
    if (manager.child.exitCode !== null) {
      // A crash is this test's failure; the next test gets a manager again (same store).
      const crash = manager.log().split('\n').filter((l) => !l.startsWith('{')).join('\n').trim().slice(-1500);
      problems.push(`manager exited (code ${manager.child.exitCode}) after ${after}:\n${crash}`);
      await revive();
      return problems;
    }
    const w = (await client.getWorker({ id: realId }, { deadlineMs: 5000 })).worker!;
    if (w.state !== WorkerState.CONNECTED) problems.push(`real worker ${WorkerState[w.state]} after ${after}`);
    if (w.connectedUnixMs !== realConnectedAt) {
      problems.push(`real worker lost its session after ${after} (connected_unix_ms ${realConnectedAt} -> ${w.connectedUnixMs})`);
      realConnectedAt = (await realConnected()).connectedUnixMs;
    }
    const t = await getTask(sleepTask.id);
    if (t.state !== TaskState.SCHEDULED || t.workerId !== realId || t.attempt !== sleepTask.attempt) {
      problems.push(`sleep task ${TaskState[t.state]} on "${t.workerId}" attempt ${t.attempt} after ${after} (was SCHEDULED on ${realId} attempt ${sleepTask.attempt})`);
      known.delete(sleepTask.id);
      if (t.state === TaskState.SCHEDULED) sleepTask = t;
      else {
        if (t.state === TaskState.PENDING) await client.cancelTask({ ids: [t.id] }, { deadlineMs: 5000 }).catch(() => undefined);
        sleepTask = await waitState((await run({ argv: ['sleep', '300'], constraints: { real: 'yes' } })).id, TaskState.SCHEDULED);
      }
      known.set(sleepTask.id, snapshot(sleepTask));
    }
    for (const [id, snap] of known) {
      const now = snapshot(await getTask(id));
      if (JSON.stringify(now) !== JSON.stringify(snap)) {
        problems.push(`stored task ${id} changed after ${after}: ${JSON.stringify(snap)} -> ${JSON.stringify(now)}`);
        known.set(id, now);
      }
    }
    const fresh = await run({ argv: ['true'], constraints: { real: 'yes' } });
    await waitState(fresh.id, TaskState.DONE).catch((err: Error) => problems.push(`a new task did not run after ${after}: ${err.message}`));
    return problems;
  }

  /** Starts the manager again on the same store and re-baselines the real worker and the known tasks. */
  async function revive(): Promise<void> {
    manager = startManager(helloTimeoutAccepted);
    await waitFor('manager up again', () => client.status({}, { deadlineMs: 1000 }), 20_000);
    realConnectedAt = (await realConnected()).connectedUnixMs;
    sleepTask = await waitState(sleepTask.id, TaskState.SCHEDULED);
    for (const id of known.keys()) known.set(id, snapshot(await getTask(id)));
  }

  /** After an attack that cut our stream: did the manager die? If so, says how, and starts it again. */
  async function crashed(what: string): Promise<string | undefined> {
    await waitFor('manager answering or exited', async () => manager.child.exitCode !== null || (await client.status({}, { deadlineMs: 1000 })), 10_000).catch(() => undefined);
    if (manager.child.exitCode === null) return undefined;
    const lines = manager.log().split('\n').filter((l) => !l.startsWith('{'));
    let at = lines.length - 1;
    while (at > 0 && !/^\w*Error\b/.test(lines[at]!)) at--;
    const stack = lines.slice(at, at + 3).map((l) => l.trim()).join(' | ');
    await revive();
    return `${what}: manager exited (restarted for the next case): ${stack}`;
  }

  /** Connects w and waits for the manager to end its stream. */
  async function refused(w: FakeWorker, ms = 5000): Promise<StreamEnd | undefined> {
    w.connect();
    const end = await w.waitEnd(ms);
    w.stop();
    return end;
  }

  it('refuses a Hello with a negative, int64-min or absurd capacity with INVALID_ARGUMENT naming the field', async () => {
    const cases: Array<[string, bigint, bigint]> = [
      ['millicpu', -1n, 1024n],
      ['memory_bytes', 1000n, -1n],
      ['millicpu', INT64_MIN, 1024n],
      ['memory_bytes', 1000n, INT64_MIN],
      ['millicpu', INT64_MAX, 1024n],
      ['memory_bytes', 1000n, INT64_MAX],
    ];
    const problems: string[] = [];
    for (const [field, millicpu, memoryBytes] of cases) {
      const end = await refused(fake('cap', { hello: { capacity: { millicpu, memoryBytes } } }));
      const what = `capacity {millicpu ${millicpu}, memory ${memoryBytes}}`;
      if (!end) problems.push(`${what}: stream not closed within 5s`);
      else if (end.code !== grpc.status.INVALID_ARGUMENT || !end.details.includes(`hello.capacity.${field}`) || end.welcomed) {
        problems.push(`${what}: ended ${grpc.status[end.code]} "${end.details}" welcomed=${end.welcomed}`);
      }
      const crash = await crashed(what);
      if (crash) problems.push(crash);
    }
    problems.push(...(await check('bad capacities')));
    expect(problems).to.deep.equal([]);
  });

  it("refuses a Hello that names the live real worker's id with ALREADY_EXISTS", async () => {
    const w = fake('impostor', { hello: { workerId: realId, running: [] } });
    const end = await refused(w, 5000);
    const problems: string[] = [];
    if (!end) problems.push('impostor stream not closed within 5s (its Hello was taken)');
    else if (end.code !== grpc.status.ALREADY_EXISTS || end.welcomed) problems.push(`impostor ended ${grpc.status[end.code]} "${end.details}" welcomed=${end.welcomed}`);
    problems.push(...(await check('a Hello with the real worker id')));
    expect(problems).to.deep.equal([]);
  });

  it('ignores Started/Finished for tasks never offered to the sender (pending ones and the real worker\'s)', async () => {
    const pending = [...known].find(([, s]) => s.state === 'PENDING')![0];
    let acked = false;
    const w = fake('spoof', {
      onMessage: (_w, m) => {
        if (m.msg.case === 'finishedAck' && m.msg.value.task?.taskId === 'barrier') acked = true;
      },
    });
    w.connect();
    expect(await w.waitWelcome(5000), 'spoofer welcomed').to.equal(true);
    const now = BigInt(Date.now());
    for (const [taskId, attempt] of [[pending, 1], [pending, 0], [sleepTask.id, sleepTask.attempt], [sleepTask.id, sleepTask.attempt + 1]] as const) {
      const task = { taskId, attempt };
      w.send({ case: 'started', value: { task, pid: 1, startedUnixMs: now } });
      w.send({ case: 'finished', value: { task, exitCode: 0, startedUnixMs: now, finishedUnixMs: now, stdoutTail: Buffer.from('spoofed') } });
    }
    // Messages on a stream are handled in order: once this is answered (or the stream is cut), the rest was seen.
    w.send({ case: 'finished', value: { task: { taskId: 'barrier', attempt: 1 }, exitCode: 0 } });
    await waitFor('barrier acknowledged or spoofer cut off', () => acked || !w.stream, 10_000, 50);
    w.stop();
    expect(await check('spoofed Started/Finished')).to.deep.equal([]);
  });

  it('stores at most 4 KiB of a 3.9 MiB stdout_tail, and ListTasks still works', async () => {
    const big = Buffer.alloc(Math.floor(3.9 * MiB), 'a');
    big.write('THE-END', big.length - 7);
    const w = fake('tail', {
      labels: { fake: 'tail' },
      onMessage: (self, m) => {
        if (m.msg.case !== 'startTask') return false;
        const task = { taskId: m.msg.value.taskId, attempt: m.msg.value.attempt };
        const now = BigInt(Date.now());
        self.send({ case: 'accepted', value: { task } });
        self.send({ case: 'started', value: { task, pid: 7, startedUnixMs: now } });
        self.send({ case: 'finished', value: { task, exitCode: 0, startedUnixMs: now, finishedUnixMs: now, stdoutTail: big } });
        return true;
      },
    });
    w.connect();
    expect(await w.waitWelcome(5000), 'tail worker welcomed').to.equal(true);
    const t = await run({ argv: ['yes'], constraints: { fake: 'tail' } });
    const done = await waitState(t.id, TaskState.DONE);
    w.stop();
    let listed = 0;
    let pageToken = '';
    try {
      do {
        const page = await client.listTasks({ limit: 1000, pageToken }, { deadlineMs: 10_000 });
        listed += page.tasks.length;
        pageToken = page.nextPageToken;
      } while (pageToken);
    } catch (err) {
      expect.fail(`ListTasks failed after a 3.9 MiB stdout tail was stored: ${(err as Error).message}`);
    }
    const problems = await check('a 3.9 MiB stdout tail');
    if (done.stdoutTail.byteLength > 4096) problems.push(`stored stdout tail is ${done.stdoutTail.byteLength} bytes`);
    if (!Buffer.from(done.stdoutTail).toString().endsWith('THE-END')) problems.push('the stored tail is not the last bytes of the output');
    if (listed <= known.size) problems.push(`ListTasks listed ${listed} tasks`);
    expect(problems).to.deep.equal([]);
  });

  it('refuses Hellos with huge, too many or badly named labels with INVALID_ARGUMENT naming hello.labels, storing nothing', async () => {
    const cases: Array<[string, Record<string, string>]> = [
      ['3 labels of 1 MiB', { a: 'x'.repeat(MiB), b: 'y'.repeat(MiB), c: 'z'.repeat(MiB) }],
      ['10,000 labels', Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`k${i}`, 'v']))],
      ['a key with a space', { 'bad key': 'v' }],
      ['an empty key', { '': 'v' }],
      ['a key with ;', { 'semi;colon': 'v' }],
      ['a key starting with -', { '-lead': 'v' }],
      ['a key with NUL', { 'nul\u0000': 'v' }],
    ];
    const problems: string[] = [];
    const ids: string[] = [];
    for (const [what, labels] of cases) {
      const w = fake('labels', { labels });
      ids.push(w.id);
      const end = await refused(w, 5000);
      if (!end) problems.push(`${what}: stream not closed within 5s`);
      else if (end.code !== grpc.status.INVALID_ARGUMENT || !end.details.includes('hello.labels') || end.welcomed) {
        problems.push(`${what}: ended ${grpc.status[end.code]} "${end.details.slice(0, 200)}" welcomed=${end.welcomed}`);
      }
    }
    const { workers } = await client.listWorkers({}, { deadlineMs: 10_000 });
    const stored = workers.filter((w) => ids.includes(w.id)).map((w) => w.id);
    if (stored.length > 0) problems.push(`workers stored from refused Hellos: ${stored.join(', ')}`);
    problems.push(...(await check('bad labels')));
    expect(problems).to.deep.equal([]);
  });

  // As specified: it stops reading and sends 3,000 Accepted. Then a harder one that also fakes
  // liveness with unsolicited pongs and goes on flooding (each unknown Accepted makes the manager
  // queue a CancelTask to it), so only a bound on what is queued to it can cut it off.
  for (const talker of [false, true]) {
    it(`cuts off a worker that stops reading and floods Accepted for unknown tasks${talker ? ' while faking liveness' : ''}; RSS stays bounded`, async () => {
      const w = fake(talker ? 'deaf-talker' : 'deaf');
      w.connect();
      expect(await w.waitWelcome(5000), 'deaf worker welcomed').to.equal(true);
      const rss0 = vmRss(manager.pid);
      let rssMax = rss0;
      let sent = 0;
      const flood = () => {
        for (let i = 0; i < 3000; i++, sent++) w.send({ case: 'accepted', value: { task: { taskId: `0190aaaa-0000-7000-8000-${String(sent).padStart(12, '0')}`, attempt: 1 } } });
      };
      w.pauseReading();
      flood();
      const talk = talker ? setInterval(() => (w.send({ case: 'pong', value: { seq: 0n } }), sent < 30_000 && flood()), 200) : undefined;
      const problems: string[] = [];
      try {
        await waitFor('deaf worker disconnected', async () => {
          rssMax = Math.max(rssMax, vmRss(manager.pid));
          return (await client.getWorker({ id: w.id }, { deadlineMs: 5000 })).worker!.state === WorkerState.DISCONNECTED;
        }, 30_000, 100);
      } catch (err) {
        problems.push(`${(err as Error).message} (${sent} Accepted sent)`);
      } finally {
        clearInterval(talk);
        w.resumeReading();
        w.stop();
      }
      const reason = manager.log().split('\n').filter((l) => l.includes(w.id) && /disconnected|dropping|closing/.test(l)).pop();
      console.log(`      ${w.id}: ${sent} Accepted sent; RSS ${Math.round(rss0 / MiB)} -> max ${Math.round(rssMax / MiB)} MiB; ${reason?.slice(0, 240) ?? 'no log line'}`);
      problems.push(...(await check(`a deaf flooding worker${talker ? ' faking liveness' : ''}`)));
      if (rssMax - rss0 >= 100 * MiB) problems.push(`manager RSS grew by ${Math.round((rssMax - rss0) / MiB)} MiB`);
      expect(problems).to.deep.equal([]);
    });
  }

  it(`closes 200 streams that never send Hello after hello_timeout (${HELLO_TIMEOUT_MS}ms)`, async () => {
    const clients = Array.from({ length: 4 }, () => workerClient(`127.0.0.1:${port}`, `silent-${++seq}`));
    const silent = Array.from({ length: 200 }, (_, i) => new FakeWorker(`silent-${i}`, clients[i % 4]!, { sendHello: false, reconnect: false }, undefined));
    const t0 = Date.now();
    const problems: string[] = helloTimeoutAccepted ? [] : ['the manager refuses the hello_timeout config key'];
    try {
      for (const s of silent) s.connect();
      const ends = await Promise.all(silent.map((s) => s.waitEnd(HELLO_TIMEOUT_MS + 10_000)));
      const open = ends.filter((e) => !e).length;
      const early = ends.filter((e) => e && e.at - t0 < HELLO_TIMEOUT_MS / 2);
      if (open > 0) problems.push(`${open} of 200 streams still open ${HELLO_TIMEOUT_MS + 10_000}ms after they were opened`);
      if (early.length > 0) problems.push(`${early.length} streams closed before hello_timeout/2, e.g. ${grpc.status[early[0]!.code]} "${early[0]!.details}"`);
    } finally {
      for (const s of silent) s.stop();
      for (const c of clients) c.close();
    }
    problems.push(...(await check('200 silent streams')));
    expect(problems).to.deep.equal([]);
  });

  it('answers any first message other than Hello with INVALID_ARGUMENT "the first message must be hello"', async () => {
    const task = { taskId: sleepTask.id, attempt: sleepTask.attempt };
    const first: Array<Parameters<FakeWorker['send']>[0]> = [
      { case: 'pong', value: { seq: 1n } },
      { case: 'accepted', value: { task } },
      { case: 'rejected', value: { task, reason: 'x' } },
      { case: 'started', value: { task, pid: 1 } },
      { case: 'finished', value: { task, exitCode: 0 } },
      { case: 'goodbye', value: { reason: 'x' } },
      { case: 'logChunk', value: { requestId: 1n } },
      { case: 'leaving', value: { reason: 'x' } },
      { case: undefined },
    ];
    const problems: string[] = [];
    for (const msg of first) {
      const w = fake('early', { sendHello: false });
      w.connect();
      w.send(msg);
      const end = await w.waitEnd(5000);
      w.stop();
      if (!end) problems.push(`${msg.case}: stream not closed within 5s`);
      else if (end.code !== grpc.status.INVALID_ARGUMENT || !/the first message must be hello/.test(end.details)) {
        problems.push(`${msg.case}: ended ${grpc.status[end.code]} "${end.details}"`);
      }
    }
    problems.push(...(await check('messages before Hello')));
    expect(problems).to.deep.equal([]);
  });
});
