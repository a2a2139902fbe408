// What ships beside the programs: the systemd units (checked by systemd-analyze
// where it is installed), the configs make install puts in /etc/sched, the
// Dockerfile (no Docker engine here: its invariants are read from the text) and
// the one pinned Node version that the Makefile, package.json, build.mjs and the
// Dockerfile agree on.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseManagerConfig } from '../../management-node/src/config.js';
import { parseWorkerConfig } from '../../worker-node/src/config.js';
import { configSchema } from '../../schedctl/src/config.js';
import { parse as parseYaml } from 'yaml';
import { ROOT } from '../support/processes.js';

const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');
const UNITS = { manager: 'packaging/systemd/sched-management.service', worker: 'packaging/systemd/sched-worker.service' };

/** A unit's [Service] settings (key → values, in order); comments skipped. */
function settings(path: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of read(path).split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) out.set(m[1]!, [...(out.get(m[1]!) ?? []), m[2]!]);
  }
  return out;
}

const hasAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;

describe('packaging: systemd units', () => {
  it('the manager runs as sched, sandboxed, writing only its state directory', () => {
    const s = settings(UNITS.manager);
    expect(s.get('User')).to.deep.equal(['sched']);
    expect(s.get('ExecStart')).to.deep.equal(['/usr/local/bin/management-node -f /etc/sched/management-node.yaml']);
    for (const [k, v] of Object.entries({ NoNewPrivileges: 'yes', ProtectSystem: 'strict', ProtectHome: 'yes', PrivateTmp: 'yes', StateDirectory: 'sched/manager', CapabilityBoundingSet: '' })) {
      expect(s.get(k), k).to.deep.equal([v]);
    }
    expect(s.get('Environment')).to.deep.equal(['SCHED_NATIVE_DIR=/var/lib/sched/manager/native']);
  });

  it('the worker runs as root with its cgroup subtree delegated, and says why it has no NoNewPrivileges', () => {
    const s = settings(UNITS.worker);
    expect(s.has('User')).to.equal(false);
    expect(s.has('NoNewPrivileges')).to.equal(false);
    expect(s.has('ProtectSystem')).to.equal(false);
    expect(s.get('Delegate')).to.deep.equal(['yes']);
    expect(s.get('KillMode')).to.deep.equal(['mixed']);
    expect(s.get('StateDirectory')).to.deep.equal(['sched/worker']);
    const text = read(UNITS.worker);
    expect(text).to.match(/no NoNewPrivileges=yes/).and.match(/run_as/).and.match(/setpriv/);
  });

  it('the worker gives its tasks time to stop before systemd kills what is left', () => {
    const stopSec = Number(/^(\d+)s$/.exec(settings(UNITS.worker).get('TimeoutStopSec')![0]!)![1]);
    const worker = parseWorkerConfig('worker-node.yaml', read('packaging/etc/worker-node.yaml'));
    expect(stopSec * 1000).to.be.greaterThan(worker.shutdown_timeout + worker.cancel_grace);
  });

  describe('systemd-analyze', function () {
    this.timeout(60_000);
    let dir: string;
    before(function () {
      if (!hasAnalyze) {
        console.log('    (skipped: systemd-analyze is not installed; apt-get install systemd)');
        this.skip();
      }
      dir = mkdtempSync(join(tmpdir(), 'sched-units-'));
      // verify checks that ExecStart's program exists: any executable stands in for the installed ones.
      for (const path of Object.values(UNITS)) {
        const unit = read(path).replace(/\/usr\/local\/bin\/[a-z-]+/g, process.execPath);
        writeFileSync(join(dir, path.split('/').pop()!), unit);
      }
    });
    after(() => dir && rmSync(dir, { recursive: true, force: true }));

    for (const [name, path] of Object.entries(UNITS)) {
      it(`verify finds nothing to say about the ${name}'s unit (unknown keys included)`, () => {
        const r = spawnSync('systemd-analyze', ['verify', join(dir, path.split('/').pop()!)], { encoding: 'utf8' });
        expect(r.status, r.stderr).to.equal(0);
        expect(r.stderr + r.stdout).to.equal('');
      });
    }

    it("the manager's exposure (systemd-analyze security) stays at 2.0 or below", () => {
      const r = spawnSync('systemd-analyze', ['security', '--offline=yes', '--threshold=20', join(dir, 'sched-management.service')], { encoding: 'utf8' });
      expect(r.status, r.stdout.split('\n').slice(-3).join('\n')).to.equal(0);
    });
  });
});

describe('packaging: configs installed to /etc/sched', () => {
  it('parse with the programs\' own schemas and keep state under /var/lib/sched', () => {
    const manager = parseManagerConfig('management-node.yaml', read('packaging/etc/management-node.yaml'));
    expect(manager.store).to.include({ type: 'embedded', path: '/var/lib/sched/manager/store' });
    expect(manager.listen).to.equal('127.0.0.1:7070');
    const worker = parseWorkerConfig('worker-node.yaml', read('packaging/etc/worker-node.yaml'));
    expect(worker.data_dir).to.equal('/var/lib/sched/worker');
    expect(worker.run_as).to.equal('nobody');
    expect(configSchema.parse(parseYaml(read('packaging/etc/schedctl.yaml')))).to.include({ manager: '127.0.0.1:7070' });
  });
});

describe('packaging: Dockerfile', () => {
  const text = read('Dockerfile');
  const lines = text.split('\n');

  it('builds on Node of the pinned major and runs the standalone executables on Debian slim, without node', () => {
    const major = /^NODE_VERSION := (\d+)\./m.exec(read('Makefile'))![1];
    expect(text).to.match(new RegExp(`^ARG NODE_IMAGE=node:${major}-bookworm-slim$`, 'm'));
    expect(text).to.match(/^ARG RUN_IMAGE=debian:bookworm-slim$/m);
    const runtime = text.slice(text.lastIndexOf('\nFROM '));
    expect(runtime).to.match(/^\nFROM \$\{RUN_IMAGE\}$/m);
    expect(runtime).to.include('COPY --from=build /src/dist/management-node /src/dist/worker-node /src/dist/schedctl /usr/local/bin/');
    expect(runtime).not.to.match(/node_modules/);
    expect(text).to.match(/make dist \\\n && cd dist && sha256sum -c SHA256SUMS/);
  });

  it('warns, in a comment and a label, right where it publishes the unauthenticated port', () => {
    const expose = lines.findIndex((l) => l.startsWith('EXPOSE '));
    expect(expose).to.be.greaterThan(0);
    const before = lines.slice(Math.max(0, expose - 12), expose).join('\n');
    expect(before).to.match(/# WARNING: port 7070/).and.match(/UNAUTHENTICATED/);
    expect(before).to.match(/^LABEL [^\n]*\n(?: {6}[^\n]*\n)*\s+sched\.security\.warning="[^"]*without authentication/m);
  });

  it('has a HEALTHCHECK that asks the manager, runs as sched, and says which user tasks run as', () => {
    expect(text).to.match(/^HEALTHCHECK .*\\\n\s+CMD \["schedctl", "status"\]$/m);
    expect(text).to.match(/^USER sched$/m);
    expect(text).to.match(/Which user tasks run as: .*\n(#.*\n)*# .*run_as/);
  });
});

describe('packaging: the Node version', () => {
  it('is pinned once in the Makefile, and engines, build.mjs and the SEA build agree with its major', () => {
    const makefile = read('Makefile');
    const pins = makefile.match(/^NODE_VERSION := .*$/gm) ?? [];
    expect(pins).to.have.length(1);
    const major = Number(/^NODE_VERSION := (\d+)\.\d+\.\d+$/m.exec(makefile)![1]);
    const engines = (JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node;
    expect(engines).to.equal(`>=${major}`);
    expect(read('build.mjs')).to.include(`target: 'node${major}'`);
    expect(read('build/sea-plugins.mjs')).to.include(`target: 'node${major}'`);
  });
});
