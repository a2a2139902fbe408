// schedctl's help and the worker commands of many ids, against a real gRPC
// server playing the management node: each id's refusal is one line naming
// what could not be done and the server's reason; the others go on.
import { expect } from 'chai';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { serviceDefinition } from '../../common/grpc-service.js';
import { FailedPreconditionError, NotFoundError, toStatus } from '../../common/errors.js';
import { DrainWorkerResponseSchema, ManagementService, RemoveWorkerResponseSchema } from '../../proto/gen/schedapi/v1/management_pb.js';
import { WorkerSchema, WorkerState } from '../../proto/gen/schedapi/v1/types_pb.js';
import { runCli } from '../../schedctl/src/cli.js';

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(args, { out: (s) => void (out += s), err: (s) => void (err += s), isTTY: false, env: {} });
  return { code, out, err };
}

describe('schedctl help and worker commands', function () {
  this.timeout(20_000);
  let server: grpc.Server;
  let address: string;
  const drains: Array<{ id: string; drain: boolean; deadlineMs: number }> = [];
  const worker = (id: string, more: MessageInitShape<typeof WorkerSchema> = {}) =>
    create(WorkerSchema, { id, name: id === 'w-0000-aaaa' ? 'alpha' : '', state: WorkerState.DISCONNECTED, ...more });

  before(async () => {
    server = new grpc.Server();
    server.addService(serviceDefinition(ManagementService), {
      drainWorker: (call: grpc.ServerUnaryCall<{ id: string; drain: boolean; deadlineMs: number }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        const { id, drain, deadlineMs } = call.request;
        drains.push({ id, drain, deadlineMs });
        if (id !== 'alpha' && id !== 'w-0000-bbbb') return cb(toStatus(new NotFoundError('worker', id)));
        const w = worker(id === 'alpha' ? 'w-0000-aaaa' : id, { state: WorkerState.CONNECTED, draining: drain, drainDeadlineUnixMs: deadlineMs ? BigInt(Date.now() + deadlineMs) : 0n });
        cb(null, create(DrainWorkerResponseSchema, { worker: w }));
      },
      removeWorker: (call: grpc.ServerUnaryCall<{ id: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        const { id } = call.request;
        if (id === 'alpha') return cb(toStatus(new FailedPreconditionError('worker "w-0000-aaaa" is connected; drain it and stop it first')));
        cb(null, create(RemoveWorkerResponseSchema, { worker: worker(id) }));
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    address = `127.0.0.1:${port}`;
  });
  after(() => server.forceShutdown());

  it('--help documents the exit codes, the environment and -o', async () => {
    const r = await run(['--help']);
    expect(r.code).to.equal(0);
    const exit = r.out.slice(r.out.indexOf('exit status:'));
    for (const [code, what] of [
      ['0', 'success'],
      ['1', 'schedctl or the management node failed'],
      ['2', 'usage or config error'],
      ['125', 'a task is dead'],
      ['N', "the failed task's exit code"],
      ['130', 'interrupted'],
    ]) {
      expect(exit).to.match(new RegExp(`^ {2}${code}\\s+.*${what}`, 'm'));
    }
    expect(r.out).to.include('$SCHED_CONFIG');
    expect(r.out).to.include('$SCHED_MANAGER');
    expect(r.out).to.match(/-o, --output <format>\s+output format: table, wide .*name/);
    expect(r.out).to.match(/--no-headers/);
  });

  it('workers drain: many ids, the deadline sent; an unknown one is a line on stderr and exit 1, the others drained', async () => {
    drains.length = 0;
    const r = await run(['--manager', address, 'workers', 'drain', '--deadline', '10m', 'alpha', 'nope', 'w-0000-bbbb', 'alpha']);
    expect(r.code).to.equal(1);
    expect(r.err).to.equal('schedctl: cannot drain nope: worker "nope" not found\n');
    expect(drains.map((d) => [d.id, d.drain, d.deadlineMs])).to.have.deep.members([
      ['alpha', true, 600_000],
      ['nope', true, 600_000],
      ['w-0000-bbbb', true, 600_000],
    ]);
    const lines = r.out.trimEnd().split('\n');
    expect(lines[0]).to.match(/^ID\s+NAME\s+STATE\s+TASKS\s+DEADLINE$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 3))).to.deep.equal([
      ['w-0000-a', 'alpha', 'connected,draining'],
      ['w-0000-b', 'w-0000-bbbb', 'connected,draining'],
    ]);
    expect(lines[1]).to.match(/\(in (9|10)m\)$/);
    const bad = await run(['--manager', address, 'workers', 'drain', '--deadline', '10', 'alpha']);
    expect(bad.code).to.equal(2);
    expect(bad.err).to.match(/--deadline.*add a unit, e\.g\. 5s/);
  });

  it('workers undrain sends no deadline; -o json prints the workers', async () => {
    drains.length = 0;
    const r = await run(['--manager', address, '-o', 'json', 'workers', 'undrain', 'alpha']);
    expect(r.code, r.err).to.equal(0);
    expect(drains).to.deep.equal([{ id: 'alpha', drain: false, deadlineMs: 0 }]);
    const json = JSON.parse(r.out) as { workers: Array<{ id: string; draining: boolean }> };
    expect(Object.keys(json)).to.deep.equal(['workers']);
    expect(json.workers.map((w) => [w.id, w.draining])).to.deep.equal([['w-0000-aaaa', false]]);
  });

  it("workers rm prints the server's reason for a connected worker, and the workers it removed", async () => {
    const r = await run(['--manager', address, 'workers', 'rm', 'alpha', 'w-0000-cccc']);
    expect(r.code).to.equal(1);
    expect(r.err).to.equal('schedctl: cannot remove alpha: worker "w-0000-aaaa" is connected; drain it and stop it first\n');
    expect(r.out).to.match(/^ID\s+NAME\s+STATE\s+TASKS\nw-0000-c\s+w-0000-cccc\s+disconnected\s+0\n$/);
    const names = await run(['--manager', address, '-o', 'name', 'workers', 'rm', 'w-0000-cccc']);
    expect([names.code, names.out]).to.deep.equal([0, 'w-0000-cccc\n']);
  });

  it('tls ca create prints the files it wrote as data under -o json and yaml, as paths otherwise', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sched-tls-out-'));
    try {
      const json = await run(['-o', 'json', 'tls', 'ca', 'create', '--dir', dir]);
      expect(json.code, json.err).to.equal(0);
      expect(JSON.parse(json.out)).to.deep.equal({ files: [join(dir, 'ca.pem'), join(dir, 'ca-key.pem')] });
      expect(existsSync(join(dir, 'ca-key.pem'))).to.equal(true);
      const yaml = await run(['-o', 'yaml', 'tls', 'cert', 'create', '--role', 'admin', '--ca-dir', dir, '--dir', dir]);
      expect(yaml.out).to.equal(`files:\n  - ${JSON.stringify(join(dir, 'admin.pem'))}\n  - ${JSON.stringify(join(dir, 'admin-key.pem'))}\n`);
      const plain = await run(['tls', 'cert', 'create', '--role', 'worker', '--ca-dir', dir, '--dir', dir]);
      expect(plain.out).to.equal(`${join(dir, 'worker.pem')}\n${join(dir, 'worker-key.pem')}\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
