// schedctl tasks run retries RunTask with one idempotency key: runCli against
// a real in-process gRPC server that fails the first calls or answers too
// late, and retryUnary on its own.
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import { serviceDefinition } from '../../common/grpc-service.js';
import { freePort } from '../support/etcd.js';
import { ManagementService, RunTaskResponseSchema, type RunTaskRequest, type RunTaskResponse } from '../../proto/gen/schedapi/v1/management_pb.js';
import { TaskSchema, TaskState } from '../../proto/gen/schedapi/v1/types_pb.js';
import { runCli } from '../../schedctl/src/cli.js';
import { IDEMPOTENCY_KEY, isRetryable, newIdempotencyKey, parseIdempotencyKey, retryUnary } from '../../schedctl/src/retry.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** Plays the manager's RunTask: a key answers with the tasks it created first; `failNext` calls fail; `lateMs` delays the next answer. */
class FlakyManager {
  readonly server = new grpc.Server();
  address = '';
  calls: RunTaskRequest[] = [];
  byKey = new Map<string, RunTaskResponse>();
  created = 0;
  failNext = 0;
  failCode = grpc.status.UNAVAILABLE;
  lateMs = 0;

  async start(address = '127.0.0.1:0'): Promise<void> {
    const runTask: grpc.handleUnaryCall<RunTaskRequest, RunTaskResponse> = (call, cb) => {
      const req = call.request;
      this.calls.push(req);
      if (this.failNext > 0) {
        this.failNext--;
        cb({ code: this.failCode, details: this.failCode === grpc.status.UNAVAILABLE ? 'management node is shutting down' : 'bad request' });
        return;
      }
      // Stored first, answered (maybe too late) after: like a manager whose reply is lost.
      let res = req.idempotencyKey ? this.byKey.get(req.idempotencyKey) : undefined;
      if (!res) {
        const count = req.count || 1;
        const groupId = count > 1 ? `g-${this.created + 1}` : '';
        const tasks = Array.from({ length: count }, (_, i) =>
          create(TaskSchema, { id: `t-${++this.created}`, spec: req.spec, state: TaskState.PENDING, groupId, idempotencyKey: req.idempotencyKey, groupIndex: i, groupSize: count > 1 ? count : 0 }),
        );
        res = create(RunTaskResponseSchema, { task: tasks[0], tasks: count > 1 ? tasks : [], groupId });
        if (req.idempotencyKey) this.byKey.set(req.idempotencyKey, res);
      }
      const late = this.lateMs;
      this.lateMs = 0;
      const answer = res;
      if (late > 0) setTimeout(() => cb(null, answer), late);
      else cb(null, answer);
    };
    this.server.addService(serviceDefinition(ManagementService), { runTask } as unknown as grpc.UntypedServiceImplementation);
    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    this.address = `127.0.0.1:${port}`;
  }

  reset(): void {
    this.calls = [];
    this.failNext = 0;
    this.failCode = grpc.status.UNAVAILABLE;
    this.lateMs = 0;
  }
}

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(args, { out: (s) => void (out += s), err: (s) => void (err += s), isTTY: false, env: {} });
  return { code, out, err };
}

describe('schedctl tasks run: retries with one idempotency key', () => {
  const fake = new FlakyManager();
  let dir: string;
  let m: string[];
  before(async () => {
    await fake.start();
    dir = mkdtempSync(join(tmpdir(), 'schedctl-retry-'));
    m = ['--manager', fake.address];
  });
  beforeEach(() => fake.reset());
  after(() => {
    fake.server.forceShutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  it('retries UNAVAILABLE with the same fresh key until the manager answers, and prints the one task', async () => {
    fake.failNext = 3;
    const before = fake.created;
    const r = await run([...m, 'tasks', 'run', '--', 'true']);
    expect(r.err).to.equal('');
    expect(r.code).to.equal(0);
    expect(fake.calls).to.have.length(4);
    const keys = new Set(fake.calls.map((c) => c.idempotencyKey));
    expect(keys.size, 'one key for every attempt').to.equal(1);
    const [key] = keys;
    expect(key).to.match(UUID);
    expect(fake.created - before).to.equal(1);
    expect(r.out).to.equal(`${fake.byKey.get(key!)!.task!.id}\n`);
  });

  it('rides out a manager that is not listening yet (connection refused, then up)', async () => {
    const port = await freePort();
    const late = new FlakyManager();
    const pending = run(['--manager', `127.0.0.1:${port}`, 'tasks', 'run', '--', 'true']);
    await new Promise((r) => setTimeout(r, 1500));
    await late.start(`127.0.0.1:${port}`);
    try {
      const r = await pending;
      expect(r.err).to.equal('');
      expect(r).to.deep.include({ code: 0, out: 't-1\n' });
      // Answered within the 30 s retry budget: the channel redialled, not sat out grpc-js's minutes of backoff.
      expect(late.calls).to.have.length(1);
    } finally {
      late.server.forceShutdown();
    }
  });

  it('retries an attempt that ran past its deadline: the answer is the task that attempt created', async () => {
    const config = join(dir, 'fast.yaml');
    writeFileSync(config, `manager: ${fake.address}\ntimeout: 200ms\n`);
    fake.lateMs = 1000;
    const before = fake.created;
    const r = await run(['-c', config, '-v', 'tasks', 'run', '--count', '3', '--', 'true']);
    expect(r.code, r.err).to.equal(0);
    expect(fake.calls.length).to.be.at.least(2);
    expect(new Set(fake.calls.map((c) => c.idempotencyKey)).size).to.equal(1);
    expect(fake.created - before, 'tasks created').to.equal(3);
    const created = fake.byKey.get(fake.calls[0]!.idempotencyKey)!.tasks.map((t) => `${t.id}\n`).join('');
    expect(r.out).to.equal(created);
    expect(r.err).to.match(/debug: run attempt 1: management node at 127\.0\.0\.1:\d+ did not answer in time; retrying in \d+ms with the same key/);
  });

  it('each invocation gets a fresh key; --idempotency-key makes a rerun return the same task', async () => {
    await run([...m, 'tasks', 'run', '--', 'true']);
    await run([...m, 'tasks', 'run', '--', 'true']);
    const [a, b] = fake.calls.map((c) => c.idempotencyKey);
    expect(a).to.match(UUID);
    expect(b).to.match(UUID);
    expect(a).to.not.equal(b);

    fake.reset();
    const before = fake.created;
    const first = await run([...m, 'tasks', 'run', '--idempotency-key', 'nightly:2024-06-01_db.v2', '--', 'true']);
    fake.failNext = 1;
    const again = await run([...m, 'tasks', 'run', '--idempotency-key', 'nightly:2024-06-01_db.v2', '--', 'true']);
    expect(first.code).to.equal(0);
    expect(again).to.deep.equal(first);
    expect(fake.calls.map((c) => c.idempotencyKey)).to.deep.equal(Array(3).fill('nightly:2024-06-01_db.v2'));
    expect(fake.created - before).to.equal(1);
  });

  it('refuses a bad --idempotency-key with exit 2 naming the flag, before any call', async () => {
    for (const key of ['', 'a b', 'a/b', 'ключ', 'x'.repeat(129), 'k\n']) {
      const r = await run([...m, 'tasks', 'run', '--idempotency-key', key, '--', 'true']);
      expect(r.code, JSON.stringify(key)).to.equal(2);
      expect(r.err).to.include('--idempotency-key');
    }
    expect((await run([...m, 'tasks', 'run', '--idempotency-key', 'x'.repeat(128), '--', 'true'])).code).to.equal(0);
    expect(fake.calls).to.have.length(1);
  });

  it('does not retry an answer: INVALID_ARGUMENT is reported at once', async () => {
    fake.failNext = 5;
    fake.failCode = grpc.status.INVALID_ARGUMENT;
    const r = await run([...m, 'tasks', 'run', '--', 'true']);
    expect(r.code).to.equal(1);
    expect(r.err).to.equal('schedctl: bad request\n');
    expect(fake.calls).to.have.length(1);
  });

  it('documents the flag and the retries in the help text', async () => {
    const r = await run(['tasks', 'run', '--help']);
    expect(r.out).to.match(/--idempotency-key <key>/);
    expect(r.out).to.match(/Retries: each invocation sends one idempotency key/);
    expect(r.out).to.include('--idempotency-key nightly-2024-06-01');
  });
});

describe('schedctl retry module', () => {
  const unavailable = () => Object.assign(new Error('14 UNAVAILABLE: down'), { code: grpc.status.UNAVAILABLE, details: 'down' });

  it('keys: a fresh UUID each time, and the accepted alphabet', () => {
    expect(newIdempotencyKey()).to.match(UUID);
    expect(newIdempotencyKey()).to.not.equal(newIdempotencyKey());
    expect(parseIdempotencyKey('A-z_0.9:x')).to.equal('A-z_0.9:x');
    expect(() => parseIdempotencyKey('a*b')).to.throw(/1-128/);
    expect(IDEMPOTENCY_KEY.test('a'.repeat(128))).to.equal(true);
    expect(IDEMPOTENCY_KEY.test('a'.repeat(129))).to.equal(false);
  });

  it('retries only UNAVAILABLE and DEADLINE_EXCEEDED', () => {
    expect(isRetryable({ code: grpc.status.UNAVAILABLE })).to.equal(true);
    expect(isRetryable({ code: grpc.status.DEADLINE_EXCEEDED })).to.equal(true);
    for (const code of [grpc.status.INVALID_ARGUMENT, grpc.status.INTERNAL, grpc.status.RESOURCE_EXHAUSTED, grpc.status.CANCELLED]) {
      expect(isRetryable({ code }), grpc.status[code]).to.equal(false);
    }
    expect(isRetryable(new Error('x'))).to.equal(false);
    expect(isRetryable(undefined)).to.equal(false);
  });

  it('gives up with the last error once the overall bound is spent; every attempt gets its own deadline within it', async () => {
    const deadlines: number[] = [];
    const retries: number[] = [];
    const t0 = Date.now();
    let thrown: unknown;
    try {
      await retryUnary(
        (deadlineMs, attempt) => {
          deadlines.push(deadlineMs);
          expect(attempt).to.equal(deadlines.length);
          return Promise.reject(unavailable());
        },
        { totalMs: 600, attemptMs: 250, initialDelayMs: 20, maxDelayMs: 80, onRetry: (_e, attempt) => retries.push(attempt) },
      );
    } catch (err) {
      thrown = err;
    }
    const took = Date.now() - t0;
    expect((thrown as { code?: number }).code).to.equal(grpc.status.UNAVAILABLE);
    expect(took, 'kept retrying until the budget was spent').to.be.at.least(400);
    expect(deadlines.length).to.be.at.least(2);
    expect(deadlines[0]).to.equal(250);
    for (const d of deadlines) expect(d).to.be.within(1, 250);
    expect(retries).to.deep.equal(deadlines.slice(0, -1).map((_, i) => i + 1));
  });

  it('returns the first answer and stops at a non-retryable error', async () => {
    let n = 0;
    const ok = await retryUnary(() => (++n < 3 ? Promise.reject(unavailable()) : Promise.resolve('yes')), { totalMs: 5000, attemptMs: 100, initialDelayMs: 5 });
    expect([ok, n]).to.deep.equal(['yes', 3]);
    n = 0;
    const bad = Object.assign(new Error('no'), { code: grpc.status.FAILED_PRECONDITION });
    let thrown: unknown;
    await retryUnary(() => (++n, Promise.reject(bad)), { totalMs: 5000, attemptMs: 100 }).catch((err: unknown) => (thrown = err));
    expect([thrown, n]).to.deep.equal([bad, 1]);
  });

  it('an abort ends the pause and throws the last error', async () => {
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 100);
    let thrown: unknown;
    // The pause is an hour: only the abort can end it before mocha's timeout.
    await retryUnary(() => Promise.reject(unavailable()), { totalMs: 7_200_000, attemptMs: 100, initialDelayMs: 3_600_000, maxDelayMs: 3_600_000, signal: stop.signal }).catch(
      (err: unknown) => (thrown = err),
    );
    expect((thrown as { code?: number }).code).to.equal(grpc.status.UNAVAILABLE);
  });
});
