// The listings' quick roads (schedctl/src/paging.ts, h2-unary.ts, config-defaults.ts,
// main.ts's --version): each must end where the ordinary road ends, errors included.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { create, toBinary } from '@bufbuild/protobuf';
import { serviceDefinition } from '../../common/grpc-service.js';
import { ConfigError } from '../../common/config.js';
import { ListTasksResponseSchema, ListWorkersResponseSchema, ManagementService } from '../../proto/gen/schedapi/v1/management_pb.js';
import { TaskState } from '../../proto/gen/schedapi/v1/types_pb.js';
import { runCli } from '../../schedctl/src/cli.js';
import { resolveConfig } from '../../schedctl/src/config.js';
import { configWithoutFile } from '../../schedctl/src/config-defaults.js';
import { scanPage } from '../../schedctl/src/paging.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

async function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(args, { out: (s) => void (out += s), err: (s) => void (err += s), isTTY: false, env });
  return { code, out, err };
}

/** A manager whose ListTasks and ListWorkers answer as `answer` says; counts the calls. */
async function fakeManager(answer: (method: string, call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => void) {
  const server = new grpc.Server();
  const calls: string[] = [];
  const handler = (method: string) => (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
    calls.push(method);
    answer(method, call, cb);
  };
  server.addService(serviceDefinition(ManagementService), { listTasks: handler('listTasks'), listWorkers: handler('listWorkers') });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  return { address: `127.0.0.1:${port}`, calls, stop: () => server.forceShutdown() };
}

describe('schedctl listings: the quick roads end where the ordinary ones do', function () {
  this.timeout(20_000);

  it('config without a file: what config.ts resolves, or config.ts decides', () => {
    const dir = mkdtempSync(join(tmpdir(), 'schedctl-defaults-'));
    try {
      const missing = join(dir, 'missing.yaml');
      const present = join(dir, 'present.yaml');
      writeFileSync(present, 'manager: file.example:1\n');
      for (const manager of [undefined, '10.0.0.1:9000', '[::1]:7070', 'host.example:1', 'nonsense', 'a:b', ':7070', 'h:123456', ' h:1']) {
        const quick = configWithoutFile({ manager }, {}, missing);
        let full: unknown;
        try {
          full = resolveConfig({ manager }, {}, missing);
        } catch (err) {
          expect(err, String(manager)).to.be.instanceOf(ConfigError);
          expect(quick, String(manager)).to.equal(undefined);
          continue;
        }
        expect(quick, String(manager)).to.deep.equal(full);
      }
      expect(configWithoutFile({}, {}, present)).to.equal(undefined);
      expect(configWithoutFile({ config: missing }, {}, missing)).to.equal(undefined);
      expect(configWithoutFile({}, { SCHED_CONFIG: present }, missing)).to.equal(undefined);
      expect(configWithoutFile({ config: '' }, {}, missing)).to.equal(undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('main.ts answers a bare --version as commander does', async () => {
    const expected = await run(['--version']);
    for (const flag of ['--version', '-V']) {
      const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'schedctl/src/main.ts'), flag], { cwd: ROOT, encoding: 'utf8' });
      expect({ code: r.status, out: r.stdout, err: r.stderr }, flag).to.deep.equal(expected);
    }
  });

  it('lists over plain HTTP/2 from a grpc-js server, each page once', async () => {
    const fake = await fakeManager((method, call, cb) => {
      const token = (call.request as { pageToken: string }).pageToken;
      const n = token === '' ? 0 : Number(token);
      if (method === 'listWorkers') return cb(null, create(ListWorkersResponseSchema, { workers: [{ id: `w-${n}` }], nextPageToken: n < 2 ? String(n + 1) : '' }));
      cb(null, create(ListTasksResponseSchema, { tasks: [{ id: `t-${n}`, state: TaskState.DONE }], nextPageToken: n < 2 ? String(n + 1) : '' }));
    });
    try {
      const w = await run(['--manager', fake.address, 'workers', 'ls']);
      expect(w.out.trimEnd().split('\n').map((l) => l.split(/\s+/)[0])).to.deep.equal(['ID', 'w-0', 'w-1', 'w-2']);
      const t = await run(['--manager', fake.address, '-o', 'json', 'tasks', 'ls', '--limit', '0']);
      expect(JSON.parse(t.out).tasks.map((x: { id: string }) => x.id)).to.deep.equal(['t-0', 't-1', 't-2']);
      expect(fake.calls).to.deep.equal(['listWorkers', 'listWorkers', 'listWorkers', 'listTasks', 'listTasks', 'listTasks']);
    } finally {
      fake.stop();
    }
  });

  it('scans a page with its total and revision without decoding it, and says how many it left out', async () => {
    const page = Buffer.from(
      toBinary(ListTasksResponseSchema, create(ListTasksResponseSchema, { tasks: [{ id: 'a' }, { id: 'b' }], nextPageToken: 'b', total: 1048, revision: 1n << 40n })),
    );
    expect(scanPage(page, 1, 2, 3)).to.include({ count: 2, token: 'b', total: 1048 });
    expect(scanPage(page, 1, 2)).to.include({ count: 2, token: 'b', total: undefined });
    const fake = await fakeManager((_method, call, cb) => {
      const limit = (call.request as { limit: number }).limit;
      cb(null, create(ListTasksResponseSchema, { tasks: Array.from({ length: limit }, (_, i) => ({ id: `t-${i}` })), nextPageToken: 'more', total: 1048, revision: 7n }));
    });
    try {
      const r = await run(['--manager', fake.address, 'tasks', 'ls']);
      expect(r.out.trimEnd().split('\n')).to.have.length(101);
      expect(r.err).to.equal('showing 100 of 1,048 (newest first); --all for all, --limit N for more\n');
      const json = await run(['--manager', fake.address, '-o', 'json', 'tasks', 'ls', '--limit', '3']);
      expect(JSON.parse(json.out)).to.deep.include({ total: 1048 });
      expect(JSON.parse(json.out)).to.not.have.any.keys('nextPageToken', 'revision');
    } finally {
      fake.stop();
    }
  });

  it('fails as grpc-js fails: a status from the manager, asked again through grpc-js', async () => {
    const fake = await fakeManager((_method, _call, cb) => cb({ code: grpc.status.FAILED_PRECONDITION, details: 'store is read-only' }));
    try {
      for (const args of [['workers', 'ls'], ['tasks', 'ls'], ['-o', 'json', 'tasks', 'ls']]) {
        const r = await run(['--manager', fake.address, '-v', ...args]);
        expect(r.code, args.join(' ')).to.equal(1);
        expect(r.out).to.equal('');
        const lines = r.err.split('\n');
        expect(lines[0]).to.match(/^schedctl: debug: config: defaults; manager: /);
        expect(lines.slice(1, 3)).to.deep.equal(['schedctl: store is read-only', 'schedctl: debug: gRPC status FAILED_PRECONDITION (9)']);
      }
      // Each call twice: over HTTP/2, then through grpc-js for its error.
      expect(fake.calls).to.have.length(6);
    } finally {
      fake.stop();
    }
  });

  it('gives up at the deadline once, not once per road', async () => {
    const fake = await fakeManager(() => undefined); // never answers
    const dir = mkdtempSync(join(tmpdir(), 'schedctl-deadline-'));
    try {
      const config = join(dir, 'c.yaml');
      writeFileSync(config, `manager: ${fake.address}\ntimeout: 1s\n`);
      const t0 = Date.now();
      const r = await run(['-c', config, 'workers', 'ls']);
      const took = Date.now() - t0;
      expect(r.code).to.equal(1);
      expect(r.err).to.equal(`schedctl: management node at ${fake.address} did not answer in time\n`);
      // Twice the timeout would be 2s or more.
      expect(took).to.be.below(1900);
    } finally {
      fake.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('cannot reach a manager that is not there, in the usual words', async () => {
    const r = await run(['--manager', '127.0.0.1:1', 'tasks', 'ls']);
    expect(r.code).to.equal(1);
    expect(r.err).to.match(/^schedctl: cannot reach the management node at 127\.0\.0\.1:1: connection refused/);
  });
});
