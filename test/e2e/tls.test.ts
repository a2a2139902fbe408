// Mutual TLS with the built binaries: certificates made by `schedctl tls`,
// a manager that only admits certificates of the right role per service.
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, run, startDaemon, startManager, waitFor, writeYaml, type Daemon, type RunResult } from '../support/processes.js';

/** Runs a setup step (making certificates) and fails at once, with its stderr, unless it exits 0. */
async function must(bin: string, args: string[]): Promise<RunResult> {
  const r = await run(bin, args);
  expect(r.code, `${args.join(' ')}: ${r.stderr}`).to.equal(0);
  return r;
}

describe('e2e: mutual TLS', function () {
  this.timeout(60_000);
  let dir: string;
  let pki: string;
  let address: string;
  const daemons: Daemon[] = [];
  const tls = (name: string, ca = pki) => `tls: {ca: ${join(ca, 'ca.pem')}, cert: ${join(pki, `${name}.pem`)}, key: ${join(pki, `${name}-key.pem`)}}\n`;
  const ctlAs = (name: string | undefined, ...args: string[]) => {
    const file = writeYaml(join(dir, `ctl-${name ?? 'plain'}.yaml`), `manager: ${address}\n${name ? tls(name) : ''}`);
    return run(BIN.schedctl, ['-c', file, ...args]);
  };
  const startWorker = (cert: string) => {
    const yaml = writeYaml(join(dir, `w-${cert}.yaml`), `manager: ${address}\ndata_dir: ${join(dir, `w-${cert}`)}\nreconnect_interval: 200ms\n${tls(cert)}`);
    const d = startDaemon(BIN.worker, ['-f', yaml], join(dir, `w-${cert}.log`));
    daemons.push(d);
    return d;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sched-tls-'));
    pki = join(dir, 'pki');
    await must(BIN.schedctl, ['tls', 'ca', 'create', '--dir', pki]);
    for (const role of ['manager', 'worker', 'admin']) await must(BIN.schedctl, ['tls', 'cert', 'create', '--role', role, '--ca-dir', pki, '--dir', pki]);
    const manager = await startManager({
      config: `store: {type: embedded, path: ${join(dir, 'store')}}\nping_interval: 300ms\n${tls('manager')}`,
      yamlFile: join(dir, 'manager.yaml'),
      logFile: join(dir, 'manager.log'),
    });
    daemons.push(manager.daemon);
    address = manager.address;
    startWorker('worker');
    await waitFor('worker connected over TLS', async () => /\sconnected\s/.test((await ctlAs('admin', 'workers', 'ls')).stdout));
  });

  after(async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates a CA and role certificates; keys are private; files are never overwritten silently', async () => {
    expect(statSync(join(pki, 'ca-key.pem')).mode & 0o777).to.equal(0o600);
    expect(statSync(join(pki, 'admin-key.pem')).mode & 0o777).to.equal(0o600);
    expect(readFileSync(join(pki, 'worker.pem'), 'utf8')).to.match(/^-----BEGIN CERTIFICATE-----/);
    const again = await run(BIN.schedctl, ['tls', 'cert', 'create', '--role', 'admin', '--ca-dir', pki, '--dir', pki]);
    expect([again.code, again.stderr]).to.deep.equal([1, `schedctl: ${join(pki, 'admin.pem')} exists; use --force to overwrite it\n`]);
    const noCa = await run(BIN.schedctl, ['tls', 'cert', 'create', '--role', 'admin', '--ca-dir', join(dir, 'nowhere')]);
    expect(noCa.code).to.equal(1);
    expect(noCa.stderr).to.match(/cannot read .*ca\.pem: ENOENT \(create the CA first: schedctl tls ca create\)/);
  });

  it('an admin certificate runs tasks; the output is clean (no TLS warnings)', async () => {
    const r = await ctlAs('admin', 'tasks', 'run', '--wait', '--', 'echo', 'over mTLS');
    expect([r.code, r.stderr]).to.deep.equal([0, '']);
    expect((await ctlAs('admin', 'tasks', 'logs', r.stdout.trim())).stdout).to.equal('over mTLS\n');
  });

  it('refuses a worker certificate on ManagementService, and plain TCP altogether', async () => {
    const asWorker = await ctlAs('worker', 'workers', 'ls');
    expect([asWorker.code, asWorker.stderr]).to.deep.equal([1, 'schedctl: this call needs an admin certificate; the caller presented a worker certificate\n']);
    const plain = await ctlAs(undefined, 'workers', 'ls');
    expect(plain.code).to.equal(1);
    expect(plain.stderr).to.match(/^schedctl: cannot reach the management node/);
    expect(plain.stderr).to.not.match(/cannot read/);
  });

  it('refuses an admin certificate on the worker stream', async () => {
    const impostor = startWorker('admin');
    await waitFor('refused', () => /PERMISSION_DENIED: this call needs a worker certificate; the caller presented an admin certificate/.test(impostor.log()));
    const rows = (await ctlAs('admin', 'workers', 'ls')).stdout.trim().split('\n');
    expect(rows).to.have.length(2); // the header and the real worker
    await impostor.stop();
  });

  it('binds a worker id to its certificate: another worker certificate cannot take it over', async () => {
    await must(BIN.schedctl, ['tls', 'cert', 'create', '--role', 'worker', '--name', 'worker-b', '--ca-dir', pki, '--dir', pki]);
    // worker-b claims the id of the worker already connected with certificate "worker".
    const yaml = writeYaml(
      join(dir, 'w-b.yaml'),
      `manager: ${address}\ndata_dir: ${join(dir, 'w-b')}\nid_file: ${join(dir, 'w-worker', 'worker-id')}\nreconnect_interval: 200ms\n${tls('worker-b')}`,
    );
    const impostor = startDaemon(BIN.worker, ['-f', yaml], join(dir, 'w-b.log'));
    daemons.push(impostor);
    await waitFor('impostor refused', () => /PERMISSION_DENIED: worker \S+ is bound to certificate \\?"worker\\?", not \\?"worker-b\\?"/.test(impostor.log()));
    await impostor.stop();
    const rows = (await ctlAs('admin', 'workers', 'ls')).stdout.trim().split('\n');
    expect(rows).to.have.length(2); // the header and the real worker, still connected
    expect(rows[1]).to.match(/\sconnected\s/);
  });

  it('refuses a certificate from another CA', async () => {
    const other = join(dir, 'other');
    await must(BIN.schedctl, ['tls', 'ca', 'create', '--dir', other]);
    await must(BIN.schedctl, ['tls', 'cert', 'create', '--role', 'admin', '--name', 'stranger', '--ca-dir', other, '--dir', pki]);
    expect(readFileSync(join(pki, 'stranger.pem'), 'utf8')).to.match(/^-----BEGIN CERTIFICATE-----/);
    const r = await ctlAs('stranger', 'workers', 'ls');
    // Exit 1 is also what an unreadable file gives: the message must be the refused handshake.
    expect(r.code, r.stderr).to.equal(1);
    expect(r.stderr).to.not.match(/cannot read/);
    expect(r.stderr).to.match(/^schedctl: cannot reach the management node at 127\.0\.0\.1:\d+/);
    expect(r.stdout).to.equal('');
    // The same call with the admin certificate of the right CA works: the refusal is the certificate's.
    expect((await ctlAs('admin', 'workers', 'ls')).code).to.equal(0);
  });

  it('names the unreadable file in the tls section and exits 2', async () => {
    const yaml = writeYaml(
      join(dir, 'bad.yaml'),
      `listen: 127.0.0.1:0\nstore: {type: embedded, path: ${join(dir, 'bad-store')}}\ntls: {ca: ${join(pki, 'ca.pem')}, cert: ${join(dir, 'missing.pem')}, key: ${join(pki, 'manager-key.pem')}}\n`,
    );
    const r = await run(BIN.manager, ['-f', yaml]);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.equal(`management-node: tls.cert: cannot read ${join(dir, 'missing.pem')}: ENOENT\n`);
  });
});
