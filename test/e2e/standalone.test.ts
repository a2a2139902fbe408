// The standalone executables of `make dist` (build/sea.mjs): each copied alone
// to an empty directory and run there, far from the source tree and its
// node_modules: --version and --help, and a manager on the embedded store (lmdb's
// native addon comes from inside the executable), a worker and schedctl running
// tasks. Also the checksums file and `make install`'s layout. make dist costs
// ~30 s when a source changed; when dist/ is fresh it does nothing.
import { expect } from 'chai';
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, run, startDaemon, startManager, waitFor, writeYaml, type Daemon, type ManagerHandle } from '../support/processes.js';
import { startEtcd } from '../support/etcd.js';
import { until } from '../support/until.js';
import { alive } from '../support/proc.js';

const PROGRAMS = ['management-node', 'worker-node', 'schedctl'] as const;
const DIST = join(ROOT, 'dist');
const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

/** make's output, or an error with it; make runs the pinned node when the machine's is older. */
function make(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('make', ['--no-print-directory', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`make ${args.join(' ')} exited ${code}:\n${out}`))));
  });
}

/** Copies program alone into a new empty directory; returns its path there. */
function copyAlone(program: string): string {
  const dir = mkdtempSync(join(tmpdir(), `sched-standalone-${program}-`));
  copyFileSync(join(DIST, program), join(dir, program));
  return join(dir, program);
}

/** The environment the copies run in: no NODE_* variables, nothing but the system's PATH. */
const bareEnv = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({ PATH: '/usr/bin:/bin', HOME: tmpdir(), ...extra });

describe('e2e: standalone executables (make dist)', function () {
  this.timeout(120_000);
  const dirs: string[] = [];
  const daemons: Daemon[] = [];
  const copies = {} as Record<(typeof PROGRAMS)[number], string>;

  before(async function () {
    this.timeout(600_000);
    await make(['dist']);
    for (const p of PROGRAMS) {
      copies[p] = copyAlone(p);
      dirs.push(join(copies[p], '..'));
    }
  });

  after(async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('make dist writes the three executables and a SHA256SUMS that sha256sum -c accepts', () => {
    const sums = readFileSync(join(DIST, 'SHA256SUMS'), 'utf8');
    expect(sums.trim().split('\n').map((l) => l.split(/\s+/)[1])).to.deep.equal([...PROGRAMS]);
    const out = execFileSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: DIST, encoding: 'utf8' });
    for (const p of PROGRAMS) expect(out).to.include(`${p}: OK`);
  });

  for (const program of PROGRAMS) {
    it(`${program}, copied alone to an empty directory, answers --version and --help there`, async () => {
      const bin = copies[program];
      const cwd = join(bin, '..');
      const v = await runIn(cwd, bin, ['--version']);
      expect(v.code, v.stderr).to.equal(0);
      expect(v.stdout.trim()).to.equal(version);
      const h = await runIn(cwd, bin, ['--help']);
      expect(h.code, h.stderr).to.equal(0);
      expect(h.stdout).to.match(program === 'schedctl' ? /usage:/ : new RegExp(`Usage: ${program}`));
      expect(h.stderr).to.equal('');
      expect(readdirSync(cwd)).to.deep.equal([program]);
    });
  }

  describe('a cluster of copies', () => {
    let dir: string;
    let manager: ManagerHandle;
    let worker: Daemon;
    const ctl = (...args: string[]) => runIn(dir, copies.schedctl, ['--manager', manager.address, ...args]);

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'sched-standalone-cluster-'));
      dirs.push(dir);
      const native = join(dir, 'native');
      // startDaemon passes this process's environment, as it is when startManager spawns (before its first await).
      process.env['SCHED_NATIVE_DIR'] = native;
      const started = startManager({
        bin: copies['management-node'],
        config: `store: {type: embedded, path: ${join(dir, 'store')}}\nping_interval: 300ms\nlog_level: info\n`,
        yamlFile: join(dir, 'manager.yaml'),
        logFile: join(dir, 'manager.log'),
      });
      delete process.env['SCHED_NATIVE_DIR'];
      manager = await started;
      daemons.push(manager.daemon);
      const wy = writeYaml(join(dir, 'worker.yaml'), `manager: ${manager.address}\ndata_dir: ${join(dir, 'worker')}\ncancel_grace: 1s\n`);
      worker = startDaemon(copies['worker-node'], ['-f', wy], join(dir, 'worker.log'));
      daemons.push(worker);
      await waitFor('the worker connected', async () => /\bconnected\b/.test((await ctl('workers', 'ls')).stdout));
    });

    it('the manager loads lmdb from inside its executable, via a private file named by its hash', () => {
      const native = join(dir, 'native');
      expect(statSync(native).mode & 0o777).to.equal(0o700);
      const files = readdirSync(native);
      expect(files).to.have.length(1);
      expect(files[0]).to.match(/^lmdb-[0-9a-f]{16}\.node$/);
      expect(statSync(join(native, files[0]!)).mode & 0o777).to.equal(0o600);
      expect(existsSync(join(dir, 'store', 'data.mdb'))).to.equal(true);
    });

    it('schedctl runs a task to completion on the worker and reads its output', async () => {
      const r = await ctl('tasks', 'run', '--wait', '--', 'sh', '-c', 'echo standalone says hello');
      expect(r.code, r.stderr).to.equal(0);
      const id = r.stdout.trim().split('\n')[0]!;
      const shown = JSON.parse((await ctl('-o', 'json', 'tasks', 'show', id)).stdout) as { state: string };
      expect(shown.state).to.match(/succeeded|done/i);
      const logs = await ctl('tasks', 'logs', id);
      expect(logs.stdout).to.include('standalone says hello');
    });

    it("the worker's watchdog runs from the executable: a SIGKILLed worker's task is killed", async () => {
      const pidFile = join(dir, 'task.pid');
      const r = await ctl('tasks', 'run', '--', 'sh', '-c', `echo $$ > ${pidFile}; exec sleep 313`);
      expect(r.code, r.stderr).to.equal(0);
      await until('the task started', () => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '', 30_000, 50);
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      expect(alive(pid)).to.equal(true);
      await worker.kill9();
      await until('the watchdog killed the task', () => !alive(pid), 30_000, 50);
      // It says so once it has also emptied and removed the task cgroups, a moment after the kill.
      await until('the watchdog said what it killed', () => worker.log().includes('killed the task processes it left'), 30_000, 50);
    });
  });

  it('the copied manager also runs on etcd (its .proto files are inside the executable) and serves schedctl status', async () => {
    const etcd = await startEtcd();
    try {
      const dir = mkdtempSync(join(tmpdir(), 'sched-standalone-etcd-'));
      dirs.push(dir);
      const manager = await startManager({
        bin: copies['management-node'],
        config: `store: {type: etcd, endpoints: ["${etcd.endpoint}"], prefix: /sched-standalone/}\nlog_level: info\n`,
        yamlFile: join(dir, 'manager.yaml'),
        logFile: join(dir, 'manager.log'),
      });
      daemons.push(manager.daemon);
      const status = await runIn(dir, copies.schedctl, ['--manager', manager.address, 'status']);
      expect(status.code, status.stderr).to.equal(0);
      expect(status.stdout).to.match(/^Store:\s+etcd/m);
      await manager.daemon.stop();
    } finally {
      await etcd.stop();
    }
  });

  it('make install DESTDIR=… lays out the executables, units, sysusers entry and configs', async () => {
    const dest = mkdtempSync(join(tmpdir(), 'sched-install-'));
    dirs.push(dest);
    mkdirSync(join(dest, 'etc', 'sched'), { recursive: true });
    // An operator's config is kept, not overwritten.
    writeYaml(join(dest, 'etc', 'sched', 'schedctl.yaml'), 'manager: 10.0.0.1:7070\n');
    await make(['install', `DESTDIR=${dest}`]);
    for (const p of PROGRAMS) {
      const installed = join(dest, 'usr/local/bin', p);
      expect(statSync(installed).mode & 0o777).to.equal(0o755);
      expect(readFileSync(installed).equals(readFileSync(join(DIST, p)))).to.equal(true);
    }
    const unit = readFileSync(join(dest, 'usr/local/lib/systemd/system/sched-management.service'), 'utf8');
    expect(unit).to.include('ExecStart=/usr/local/bin/management-node -f /etc/sched/management-node.yaml');
    expect(existsSync(join(dest, 'usr/local/lib/systemd/system/sched-worker.service'))).to.equal(true);
    expect(readFileSync(join(dest, 'usr/local/lib/sysusers.d/sched.conf'), 'utf8')).to.match(/^u sched /m);
    expect(readFileSync(join(dest, 'etc/sched/management-node.yaml'), 'utf8')).to.include('/var/lib/sched/manager/store');
    expect(readFileSync(join(dest, 'etc/sched/worker-node.yaml'), 'utf8')).to.include('/var/lib/sched/worker');
    expect(readFileSync(join(dest, 'etc/sched/schedctl.yaml'), 'utf8')).to.equal('manager: 10.0.0.1:7070\n');
  });

  it('make install PREFIX=/opt/sched points the units at the executables there', async () => {
    const dest = mkdtempSync(join(tmpdir(), 'sched-install-'));
    dirs.push(dest);
    await make(['install', `DESTDIR=${dest}`, 'PREFIX=/opt/sched']);
    expect(existsSync(join(dest, 'opt/sched/bin/worker-node'))).to.equal(true);
    const unit = readFileSync(join(dest, 'opt/sched/lib/systemd/system/sched-worker.service'), 'utf8');
    expect(unit).to.include('ExecStart=/opt/sched/bin/worker-node -f /etc/sched/worker-node.yaml');
  });
});

/** run() in cwd with the bare environment. */
function runIn(cwd: string, bin: string, args: string[]): ReturnType<typeof run> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { cwd, env: bareEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 128, stdout, stderr });
    });
  });
}
