// Structure-aware fuzz of both services against the real manager binary: fake workers send valid
// envelopes with out-of-range fields (negative and huge ints, huge strings, NUL bytes, unknown
// enum values, any oneof case, wrong attempts and ids) and mutated encodings, while a client sends
// random RunTask/GetTask/ListTasks/CancelTask/DrainWorker requests. Afterwards: no crash, every
// stored task loads (the manager is restarted on its store) and passes basic invariants, RSS bounded.
//
//   node_modules/.bin/mocha test/e2e/fuzz-protocol.test.ts      (FUZZ_SEED=n FUZZ_OPS=2000)
import { expect } from 'chai';
import fc from 'fast-check';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { create, toBinary, type DescMessage } from '@bufbuild/protobuf';
import { createServiceClient, type ServiceClient } from '../../common/grpc-service.js';
import { ManagementService } from '../../proto/gen/schedapi/v1/management_pb.js';
import { TaskState, type Task, type Worker } from '../../proto/gen/schedapi/v1/types_pb.js';
import { ConnectRequestSchema } from '../../proto/gen/schedapi/v1/worker_pb.js';
import { freePorts } from '../support/etcd.js';
import { FakeFleet, openRawConnect, workerClient, type FakeWorker, type Outgoing } from '../support/fake-worker.js';
import { BIN, startDaemon, waitFor, writeYaml, type Daemon } from '../support/processes.js';

const MANAGER = process.env.SCHED_BIN_ROOT ? join(process.env.SCHED_BIN_ROOT, 'management-node/bin/management-node') : BIN.manager;
const OPS = Number(process.env.FUZZ_OPS ?? 2000);
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
const FUZZERS = 6;
const MAX_RESTARTS = 10;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const MiB = 1024 * 1024;

type Client = ServiceClient<(typeof ManagementService)['method']>;
const vmRss = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;

// ---- arbitraries --------------------------------------------------------------------------
const str = fc.oneof(
  { weight: 10, arbitrary: fc.string({ maxLength: 24 }) },
  { weight: 4, arbitrary: fc.constantFrom('', '\u0000', 'a\u0000b', '..', '../../etc/passwd', ' ', 'binpack', 'spread', 'SIGKILL') },
  { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.nat({ max: 256 * 1024 }).map((n) => 'x'.repeat(n)) },
);
const u32 = fc.oneof(fc.constantFrom(0, 1, 2, 3, 0x7fffffff, 0xffffffff), fc.integer({ min: 0, max: 0xffffffff }));
const i32 = fc.oneof(fc.constantFrom(-(2 ** 31), -1, 0, 1, 2 ** 31 - 1), fc.integer());
const i64 = fc.oneof(fc.constantFrom(INT64_MIN, -1n, 0n, 1n, 1000n, INT64_MAX), fc.bigInt({ min: INT64_MIN, max: INT64_MAX }));
const u64 = fc.oneof(fc.constantFrom(0n, 1n, 2n ** 64n - 1n), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }));
const dbl = fc.oneof(fc.constantFrom(NaN, Infinity, -Infinity, -0, 1e308, -1), fc.double());
const bytes = fc.oneof(
  { weight: 8, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  { weight: 1, arbitrary: fc.nat({ max: 1 * MiB }).map((n) => new Uint8Array(n).fill(65)) },
);
const dict = fc.dictionary(str, str, { maxKeys: 4 });
/** An id: mostly one of the known tasks (resolved when sent), else anything. */
type Ref = { pick: number } | { lit: string };
const ref = fc.oneof({ weight: 5, arbitrary: fc.nat().map((pick): Ref => ({ pick })) }, { weight: 2, arbitrary: str.map((lit): Ref => ({ lit })) });
const attempt = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(0, 1, 2) }, { weight: 1, arbitrary: u32 });
const ta = fc.record({ task: ref, attempt });

const workerMsg = fc.oneof(
  fc.record({ case: fc.constant('hello' as const), workerId: fc.oneof(str, fc.constant('<self>'), fc.constant('<legit>')), token: str, capacity: fc.record({ millicpu: i64, memoryBytes: i64 }), labels: dict, hardware: fc.record({ hostname: str, cpuCount: u32, memoryBytes: i64 }), version: str, running: fc.array(ta, { maxLength: 4 }) }),
  fc.record({ case: fc.constant('pong' as const), seq: u64, runningTasks: u32, load1: dbl, memoryFreeBytes: i64, load5: dbl, load15: dbl }),
  fc.record({ case: fc.constant('accepted' as const), ta }),
  fc.record({ case: fc.constant('rejected' as const), ta, reason: str }),
  fc.record({ case: fc.constant('started' as const), ta, pid: u32, startedUnixMs: i64 }),
  fc.record({ case: fc.constant('finished' as const), ta, exitCode: i32, signal: str, error: str, startedUnixMs: i64, finishedUnixMs: i64, stdoutTail: bytes, stderrTail: bytes, pid: u32, timedOut: fc.boolean(), startFailed: fc.boolean(), lost: fc.boolean() }),
  fc.record({ case: fc.constant('goodbye' as const), reason: str }),
  fc.record({ case: fc.constant('logChunk' as const), requestId: u64, data: bytes, eof: fc.boolean(), error: str }),
  fc.record({ case: fc.constant('leaving' as const), reason: str, deadlineUnixMs: i64 }),
  fc.record({ case: fc.constant('none' as const) }),
);
/** Mostly a plausible value, sometimes anything. */
function sane<A, B>(ok: fc.Arbitrary<A>, wild: fc.Arbitrary<B>): fc.Arbitrary<A | B> {
  return fc.oneof({ weight: 6, arbitrary: ok }, { weight: 1, arbitrary: wild });
}
const mutation = fc.record({ flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), cut: fc.option(fc.nat()), tail: fc.uint8Array({ maxLength: 16 }) });

const clientReq = fc.oneof(
  { weight: 4, arbitrary: fc.record({ rpc: fc.constant('runTask' as const), argv: sane(fc.constantFrom<string[]>(['true'], ['sh', '-c', 'exit 3'], ['sleep', '0.1']), fc.array(str, { maxLength: 4 })), env: sane(fc.constant({}), dict), cwd: sane(fc.constant(''), str), millicpu: sane(fc.constantFrom(0n, 100n, 1000n), i64), memoryBytes: sane(fc.constantFrom(0n, 1n << 20n), i64), constraints: sane(fc.constant({}), dict), priority: i32, retries: sane(fc.constantFrom(0, 1, 2), u32), strategy: sane(fc.constantFrom('', 'binpack', 'spread'), str), scheduleTimeoutMs: sane(fc.constant(0), u32), timeoutMs: sane(fc.constantFrom(0, 50), u32), count: fc.oneof({ weight: 30, arbitrary: fc.integer({ min: 0, max: 20 }) }, { weight: 2, arbitrary: fc.constantFrom(10_001, 0xffffffff) }, { weight: 1, arbitrary: fc.constant(500) }), key: sane(fc.constant(''), str) }) },
  { weight: 3, arbitrary: fc.record({ rpc: fc.constant('getTask' as const), id: ref }) },
  { weight: 3, arbitrary: fc.record({ rpc: fc.constant('listTasks' as const), state: fc.oneof(fc.integer({ min: 0, max: 4 }), i32), worker: fc.option(ref), limit: u32, page: fc.option(ref), groupId: str }) },
  { weight: 2, arbitrary: fc.record({ rpc: fc.constant('cancelTask' as const), ids: fc.array(ref, { maxLength: 5 }), graceMs: u32 }) },
  { weight: 2, arbitrary: fc.record({ rpc: fc.constant('drainWorker' as const), id: fc.oneof(str, fc.nat().map((n) => `<worker ${n}>`)), drain: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ rpc: fc.constant('getWorker' as const), id: str }) },
);
const op = fc.oneof(
  { weight: 10, arbitrary: fc.record({ kind: fc.constant('worker' as const), worker: fc.nat(FUZZERS - 1), msg: workerMsg }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('raw' as const), msg: workerMsg, mutation }) },
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('client' as const), req: clientReq }) },
);
type Of<A> = A extends fc.Arbitrary<infer T> ? T : never;
type Op = Of<typeof op>;
type WorkerMsg = Of<typeof workerMsg>;
type ClientReq = Of<typeof clientReq>;

describe('e2e: protocol fuzz of WorkerService and ManagementService', function () {
  this.timeout(240_000);
  let dir: string;
  let port: number;
  let yaml: string;
  let manager: Daemon;
  let client: Client;
  let fleet: FakeFleet;
  const daemons: Daemon[] = [];
  const taskIds: string[] = [];
  const codes = new Map<string, number>();
  const crashes: string[] = [];
  const internal: string[] = [];
  const unavailable: string[] = [];
  let rss0 = 0;
  let rssMax = 0;
  let listedBefore: string[] = [];

  const startManager = () => {
    manager = startDaemon(MANAGER, ['-f', yaml], join(dir, `manager-${daemons.length}.log`));
    daemons.push(manager);
    return waitFor('manager up', () => client.status({}, { deadlineMs: 1000 }), 20_000);
  };
  const pick = (r: Ref) => ('lit' in r ? r.lit : taskIds.length ? taskIds[r.pick % taskIds.length]! : 'no-task-yet');
  const count = (rpc: string, code: grpc.status | string) => {
    const k = `${rpc} ${typeof code === 'number' ? grpc.status[code] : code}`;
    codes.set(k, (codes.get(k) ?? 0) + 1);
  };

  before(async () => {
    if (!existsSync(MANAGER)) throw new Error(`${MANAGER} missing: run node build.mjs first`);
    dir = mkdtempSync(join(tmpdir(), 'sched-fuzz-'));
    [port] = (await freePorts(1)) as [number];
    yaml = writeYaml(join(dir, 'manager.yaml'), `listen: 127.0.0.1:${port}\nstore: {type: embedded, path: ${join(dir, 'store')}}\nping_interval: 500ms\nack_timeout: 1s\nreconnect_grace: 2s\nlog_level: info\n`);
    client = createServiceClient(ManagementService, `127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 500 });
    await startManager();
    fleet = new FakeFleet({ address: `127.0.0.1:${port}`, count: 2, idPrefix: 'legit', runDelayMs: 20 });
    await fleet.start(10_000);
    for (let i = 0; i < FUZZERS; i++) fleet.add(`fuzz-${i}`, { reconnect: true, reconnectDelayMs: 100 }).connect();
    rss0 = rssMax = vmRss(manager.pid);
  });

  after(async () => {
    fleet?.stop();
    client?.close();
    for (const d of daemons) await d.stop();
    if (dir && !process.env.KEEP_FUZZ_DIR) rmSync(dir, { recursive: true, force: true });
  });

  function toOutgoing(m: WorkerMsg, self: string): Outgoing | { case: undefined } {
    const t = (x: { task: Ref; attempt: number }) => ({ taskId: pick(x.task), attempt: x.attempt });
    switch (m.case) {
      case 'hello': {
        const workerId = m.workerId === '<self>' ? self : m.workerId === '<legit>' ? 'legit-0000' : m.workerId;
        return { case: 'hello', value: { ...m, workerId, running: m.running.map(t) } };
      }
      case 'pong':
      case 'goodbye':
      case 'logChunk':
      case 'leaving':
        return { case: m.case, value: m } as Outgoing;
      case 'accepted':
      case 'rejected':
      case 'started':
      case 'finished':
        return { case: m.case, value: { ...m, task: t(m.ta) } } as Outgoing;
      default:
        return { case: undefined };
    }
  }

  async function clientCall(r: ClientReq): Promise<void> {
    const o = { deadlineMs: 10_000 };
    switch (r.rpc) {
      case 'runTask': {
        const spec = { argv: r.argv, env: r.env, cwd: r.cwd, resources: { millicpu: r.millicpu, memoryBytes: r.memoryBytes }, constraints: r.constraints, priority: r.priority, retries: r.retries, strategy: r.strategy, scheduleTimeoutMs: r.scheduleTimeoutMs, timeoutMs: r.timeoutMs };
        const res = await client.runTask({ spec, count: r.count, idempotencyKey: r.key }, o);
        for (const t of res.tasks.length ? res.tasks : res.task ? [res.task] : []) taskIds.push(t.id);
        return;
      }
      case 'getTask':
        return void (await client.getTask({ id: pick(r.id) }, o));
      case 'listTasks':
        return void (await client.listTasks({ state: r.state, workerId: r.worker ? pick(r.worker) : '', limit: r.limit, pageToken: r.page ? pick(r.page) : '', groupId: r.groupId }, o));
      case 'cancelTask':
        return void (await client.cancelTask({ ids: r.ids.map(pick), graceMs: r.graceMs }, o));
      case 'drainWorker': {
        const id = r.id.startsWith('<worker ') ? fleet.workers[Number(r.id.slice(8, -1)) % fleet.workers.length]!.id : r.id;
        return void (await client.drainWorker({ id, drain: r.drain }, o));
      }
      case 'getWorker':
        return void (await client.getWorker({ id: r.id }, o));
    }
  }

  it(`survives ${OPS} fuzzed messages and requests without a crash`, async () => {
    console.log(`      seed ${SEED} (FUZZ_SEED=${SEED} to repeat)`);
    const ops: Op[] = fc.sample(op, { numRuns: OPS, seed: SEED });
    const inflight = new Set<Promise<void>>();
    const recent: string[] = [];
    const rawClient = workerClient(`127.0.0.1:${port}`, 'fuzz-raw');
    let raw: ReturnType<typeof openRawConnect> | undefined;
    let skipped = 0;
    const t0 = Date.now();
    for (let i = 0; i < ops.length; i++) {
      const o = ops[i]!;
      recent.push(JSON.stringify(o, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : typeof v === 'string' && v.length > 64 ? `<${v.length} chars>` : v instanceof Uint8Array ? `<${v.length} bytes>` : v)).slice(0, 400));
      if (recent.length > 5) recent.shift();
      if (o.kind === 'client') {
        const p = clientCall(o.req).then(
          () => count(o.req.rpc, grpc.status.OK),
          (err: grpc.ServiceError) => {
            count(o.req.rpc, err.code ?? `thrown: ${err.message}`);
            if (err.code === grpc.status.INTERNAL || err.code === grpc.status.UNKNOWN) internal.push(`${o.req.rpc}: ${err.details}`);
            if (err.code === grpc.status.UNAVAILABLE && unavailable.length < 3) unavailable.push(`op ${i} ${o.req.rpc}: ${err.details}`);
          },
        );
        inflight.add(p);
        void p.finally(() => inflight.delete(p));
        if (inflight.size >= 16) await Promise.race(inflight);
      } else if (o.kind === 'worker') {
        const w: FakeWorker = fleet.workers[2 + o.worker]!;
        if (!w.welcomed && !(await w.waitWelcome(3000))) skipped++;
        else w.send(toOutgoing(o.msg, w.id) as Outgoing);
      } else {
        if (!raw || raw.destroyed || raw.writableEnded) {
          raw = openRawConnect(rawClient);
          raw.on('error', () => undefined);
          raw.on('data', () => undefined);
          raw.write(Buffer.from(toBinary(ConnectRequestSchema, create(ConnectRequestSchema, { msg: { case: 'hello', value: { workerId: 'fuzz-raw', capacity: { millicpu: 1000n, memoryBytes: 1n << 30n } } } }))));
        }
        let buf: Uint8Array = toBinary(ConnectRequestSchema as DescMessage, create(ConnectRequestSchema, { msg: toOutgoing(o.msg, 'fuzz-raw') as Outgoing }));
        buf = Uint8Array.from(buf);
        for (const [at, v] of o.mutation.flips) if (buf.length) buf[at % buf.length] = v;
        if (o.mutation.cut !== null && buf.length) buf = buf.slice(0, o.mutation.cut % buf.length);
        raw.write(Buffer.concat([buf, o.mutation.tail]));
      }
      if (i % 25 === 0) {
        rssMax = Math.max(rssMax, manager.child.exitCode === null ? vmRss(manager.pid) : 0);
        if (manager.child.exitCode !== null) {
          const lines = manager.log().split('\n').filter((l) => !l.startsWith('{'));
          let at = lines.length - 1;
          while (at > 0 && !/^\w*Error\b/.test(lines[at]!)) at--;
          crashes.push(`after op ${i}: ${lines.slice(at, at + 3).map((l) => l.trim()).join(' | ')}\n        recent ops: ${recent.join('\n          ')}`);
          if (crashes.length > MAX_RESTARTS) break;
          await startManager();
          rss0 = rssMax = vmRss(manager.pid);
        }
      }
    }
    await Promise.all(inflight);
    raw?.cancel();
    rawClient.close();
    console.log(`      ${OPS} ops in ${Date.now() - t0} ms; ${skipped} worker ops skipped (stream down); ${taskIds.length} tasks created; RPC results ${JSON.stringify(Object.fromEntries(codes))}`);
    console.log(`      manager RSS ${Math.round(rss0 / MiB)} → max ${Math.round(rssMax / MiB)} MiB; crashes ${crashes.length}`);
    for (const c of crashes.slice(0, 3)) console.log(`      crash ${c}`);
    for (const u of unavailable) console.log(`      e.g. UNAVAILABLE: ${u}`);
    await waitFor('manager answering after the fuzz', async () => manager.child.exitCode !== null || (await client.status({}, { deadlineMs: 2000 })), 20_000).catch(() => undefined);
    if (manager.child.exitCode !== null) crashes.push('manager dead after the last op');
    expect(crashes.length, `manager crashes:\n${crashes.slice(0, 3).join('\n')}`).to.equal(0);
  });

  it('no RPC failed with INTERNAL or UNKNOWN', () => {
    const bad = [...codes].filter(([c]) => / (INTERNAL|UNKNOWN|thrown)/.test(c));
    expect(bad, internal.slice(0, 3).join('; ')).to.deep.equal([]);
  });

  // Beyond crash-freedom: an RPC refused means one bad request hurt the others on
  // its connection (e.g. an error message that echoes a 256 KiB id becomes an oversized trailer).
  it('no RPC was refused (UNAVAILABLE)', () => {
    const bad = [...codes].filter(([c]) => / UNAVAILABLE/.test(c));
    const slow = [...codes].filter(([c]) => / DEADLINE_EXCEEDED/.test(c));
    expect(bad, `${unavailable.join('; ')}; also DEADLINE_EXCEEDED: ${JSON.stringify(slow)}`).to.deep.equal([]);
  });

  async function listAll(): Promise<Task[]> {
    const all: Task[] = [];
    let pageToken = '';
    do {
      // Oldest first, so the pages can be checked to come in id order.
      const res = await client.listTasks({ limit: 1000, pageToken, oldestFirst: true }, { deadlineMs: 30_000 });
      all.push(...res.tasks);
      pageToken = res.nextPageToken;
    } while (pageToken && all.length < 1_000_000);
    return all;
  }

  function taskProblems(tasks: Task[]): string[] {
    const problems: string[] = [];
    let prev = '';
    const say = (t: Task, what: string) => problems.push(`${t.id} (${TaskState[t.state] ?? t.state}): ${what}`);
    for (const t of tasks) {
      if (!/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(t.id)) say(t, 'id is not a UUIDv7');
      if (t.id <= prev) say(t, `listed after ${prev}: pages not in id order`);
      prev = t.id;
      if (![TaskState.PENDING, TaskState.SCHEDULED, TaskState.DONE, TaskState.DEAD].includes(t.state)) say(t, 'unknown state');
      const argv = t.spec?.argv ?? [];
      if (!argv[0] || argv.some((a) => a.includes('\0'))) say(t, `bad argv ${JSON.stringify(argv).slice(0, 80)}`);
      if ((t.spec?.resources?.millicpu ?? 0n) < 0n || (t.spec?.resources?.memoryBytes ?? 0n) < 0n) say(t, 'negative resources');
      if ((t.state === TaskState.SCHEDULED || t.state === TaskState.DONE) && (!t.workerId || t.attempt < 1)) say(t, `worker "${t.workerId}" attempt ${t.attempt}`);
      if (t.state === TaskState.DEAD && !t.deadReason) say(t, 'dead without a reason');
      if (t.state === TaskState.PENDING && t.finishedUnixMs !== 0n) say(t, 'pending with a finish time');
      if (t.stdoutTail.byteLength > 4096 || t.stderrTail.byteLength > 4096) say(t, `output tails of ${t.stdoutTail.byteLength}/${t.stderrTail.byteLength} bytes (max 4096)`);
      if (t.retriesUsed > (t.spec?.retries ?? 0)) say(t, `retries used ${t.retriesUsed} > ${t.spec?.retries ?? 0}`);
    }
    return problems;
  }

  it('every task listed passes basic invariants, and ListTasks pages through all of them', async () => {
    const tasks = await listAll();
    listedBefore = tasks.map((t) => t.id);
    const status = await client.status({}, { deadlineMs: 10_000 });
    const total = Object.values(status.tasksByState).reduce((a, b) => a + b, 0);
    const problems = taskProblems(tasks);
    console.log(`      ${tasks.length} tasks listed (Status counts ${total}); ${problems.length} invariant violations`);
    expect(tasks.length, 'listed = Status total').to.equal(total);
    expect(problems.slice(0, 10), `${problems.length} violations`).to.deep.equal([]);
  });

  it('every worker record is sane (capacity not negative, at most 64 labels)', async () => {
    const { workers } = await client.listWorkers({}, { deadlineMs: 10_000 });
    const bad = workers.filter((w: Worker) => (w.capacity?.millicpu ?? 0n) < 0n || (w.capacity?.memoryBytes ?? 0n) < 0n || Object.keys(w.labels).length > 64);
    expect(bad.map((w) => `${JSON.stringify(w.id).slice(0, 40)} capacity ${w.capacity?.millicpu}/${w.capacity?.memoryBytes} labels ${Object.keys(w.labels).length}`)).to.deep.equal([]);
  });

  // Headroom for V8's heap sizing: on Node 24 a run here peaked at +203 MiB (Node 20 stayed under
  // 200); a leak of what the fuzz sends would grow with its 2,000 messages, far past this.
  it('manager RSS stayed bounded (grew < 256 MiB)', () => {
    expect(rssMax - rss0, `RSS ${Math.round(rss0 / MiB)} → ${Math.round(rssMax / MiB)} MiB`).to.be.below(256 * MiB);
  });

  it('restarted on its store, the manager loads every stored task again', async () => {
    await manager.stop();
    await startManager();
    const tasks = await listAll();
    const ids = new Set(tasks.map((t) => t.id));
    const missing = listedBefore.filter((id) => !ids.has(id));
    expect(manager.child.exitCode, manager.log().slice(-1500)).to.equal(null);
    expect(missing.length, `tasks missing after the restart, e.g. ${missing.slice(0, 3).join(', ')}`).to.equal(0);
    expect(taskProblems(tasks).slice(0, 10)).to.deep.equal([]);
  });
});
