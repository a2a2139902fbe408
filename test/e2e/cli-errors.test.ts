// schedctl's one-line errors when it cannot reach the management node, with
// the built binaries and real sockets: TLS on one side only, the metrics port
// instead of the gRPC one, an unknown host, nothing listening. Each line says
// what could not be done, then why.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, run, startManager, writeYaml, type Daemon } from '../support/processes.js';

describe('e2e: schedctl error messages', function () {
  this.timeout(60_000);
  let dir: string;
  let pki: string;
  let tlsManager: string;
  let plainManager: string;
  let metrics: string;
  const daemons: Daemon[] = [];
  const tls = (name: string) => `tls: {ca: ${join(pki, 'ca.pem')}, cert: ${join(pki, `${name}.pem`)}, key: ${join(pki, `${name}-key.pem`)}}\n`;
  /** schedctl with a config file of its own (so /etc/sched and the environment play no part). */
  const ctl = (config: string, ...args: string[]) => run(BIN.schedctl, ['-c', writeYaml(join(dir, `ctl-${Math.random()}.yaml`), config), ...args]);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sched-cli-errors-'));
    pki = join(dir, 'pki');
    for (const args of [['tls', 'ca', 'create', '--dir', pki], ...['manager', 'admin'].map((role) => ['tls', 'cert', 'create', '--role', role, '--ca-dir', pki, '--dir', pki])]) {
      const r = await run(BIN.schedctl, args);
      expect(r.code, r.stderr).to.equal(0);
    }
    const [withTls, plain] = await Promise.all([
      startManager({ config: `store: {type: embedded, path: ${join(dir, 's1')}}\n${tls('manager')}`, yamlFile: join(dir, 'm1.yaml'), logFile: join(dir, 'm1.log') }),
      startManager({
        config: `store: {type: embedded, path: ${join(dir, 's2')}}\nmetrics_listen: 127.0.0.1:0\n`,
        yamlFile: join(dir, 'm2.yaml'),
        logFile: join(dir, 'm2.log'),
      }),
    ]);
    daemons.push(withTls.daemon, plain.daemon);
    tlsManager = withTls.address;
    plainManager = plain.address;
    expect(plain.metricsPort, 'metrics port').to.be.a('number');
    metrics = `127.0.0.1:${plain.metricsPort}`;
  });

  after(async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  const oneLine = (stderr: string) => expect(stderr.trimEnd().split('\n'), stderr).to.have.length(1);

  it('plain client, TLS manager: says the manager speaks TLS and the config has no tls: section', async () => {
    for (const args of [['status'], ['tasks', 'ls'], ['workers', 'ls']]) {
      const r = await ctl(`manager: ${tlsManager}\n`, ...args);
      expect(r.code, args.join(' ')).to.equal(1);
      oneLine(r.stderr);
      expect(r.stderr).to.equal(`schedctl: cannot reach the management node at ${tlsManager}: it speaks TLS, but schedctl's config has no tls: section (add one: ca, cert and key)\n`);
    }
    // The same manager with the admin certificate: the refusal was the missing TLS.
    const ok = await ctl(`manager: ${tlsManager}\n${tls('admin')}`, 'status');
    expect(ok.code, ok.stderr).to.equal(0);
  });

  it('TLS client, plain manager: says the manager does not speak TLS', async () => {
    for (const args of [['status'], ['tasks', 'ls']]) {
      const r = await ctl(`manager: ${plainManager}\n${tls('admin')}`, ...args);
      expect(r.code, args.join(' ')).to.equal(1);
      oneLine(r.stderr);
      expect(r.stderr).to.equal(
        `schedctl: cannot reach the management node at ${plainManager}: it does not speak TLS, but schedctl's config has a tls: section (remove it, or give the management node one)\n`,
      );
    }
  });

  it('the metrics port: says it answered HTTP/1.1, not gRPC', async () => {
    for (const args of [['status'], ['workers', 'ls'], ['tasks', 'ls']]) {
      const r = await run(BIN.schedctl, ['--manager', metrics, ...args], { env: { ...process.env, SCHED_CONFIG: '', SCHEDCTL_CONFIG: '' } });
      expect(r.code, args.join(' ')).to.equal(1);
      oneLine(r.stderr);
      expect(r.stderr).to.equal(`schedctl: cannot reach the management node at ${metrics}: it answered HTTP/1.1, not gRPC (is that the metrics port?)\n`);
    }
  });

  it('an unknown host: names the host', async () => {
    const r = await ctl('manager: no-such-host.invalid:7070\n', 'status');
    expect(r.code).to.equal(1);
    oneLine(r.stderr);
    expect(r.stderr).to.equal('schedctl: cannot reach the management node at no-such-host.invalid:7070: unknown host "no-such-host.invalid" (the name does not resolve)\n');
  });

  it('nothing listening: connection refused', async () => {
    // A port that was just free: bound, its number taken, closed.
    const free = await new Promise<number>((resolve) => {
      const s: Server = createServer().listen(0, '127.0.0.1', () => {
        const { port } = s.address() as { port: number };
        s.close(() => resolve(port));
      });
    });
    const r = await ctl(`manager: 127.0.0.1:${free}\n`, 'status');
    expect(r.code).to.equal(1);
    oneLine(r.stderr);
    expect(r.stderr).to.equal(`schedctl: cannot reach the management node at 127.0.0.1:${free}: connection refused (is the management node running, and listening on that port?)\n`);
  });

  it('-v adds the gRPC status on a line of its own', async () => {
    const r = await ctl('manager: no-such-host.invalid:7070\n', '-v', 'status');
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(/^schedctl: debug: gRPC status UNAVAILABLE \(14\)$/m);
  });
});
