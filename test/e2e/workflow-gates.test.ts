// Workflow gates with the built binaries: a dependency chain that survives a kill -9 of
// the manager, tasks that fail their dependents, --at/--in, hold and release, update.
import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, run, startManager, startWorker, waitFor, type Daemon, type ManagerHandle } from '../support/processes.js';

describe('e2e: workflow gates (dependencies, --at/--in, hold, update)', function () {
  this.timeout(120_000);
  let dir: string;
  let manager: ManagerHandle;
  let worker: Daemon | undefined;
  const ctl = (...args: string[]) => run(BIN.schedctl, ['--manager', manager.address, ...args]);
  const submit = async (...args: string[]) => {
    const r = await ctl('tasks', 'run', ...args);
    expect(r.code, r.stderr).to.equal(0);
    return r.stdout.trim();
  };
  const show = async (id: string) => (await ctl('tasks', 'show', id)).stdout;
  const startTheManager = (port = 0) =>
    startManager({
      config: `store: {type: embedded, path: ${join(dir, 'store')}}\nping_interval: 300ms\n`,
      yamlFile: join(dir, 'manager.yaml'),
      logFile: join(dir, 'manager.log'),
      port,
    });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sched-gates-'));
    manager = await startTheManager();
    worker = await startWorker(manager.address, dir);
  });

  after(async () => {
    await worker?.stop();
    await manager?.daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a chain A → B → C runs once each, in order, across a kill -9 of the manager while A runs', async () => {
    const order = join(dir, 'order');
    const go = join(dir, 'go');
    // A appends, then runs until the test lets it end: the manager dies while it runs.
    const a = await submit('--shell', '--', `echo A >> ${order}; while [ ! -e ${go} ]; do sleep 0.05; done`);
    const b = await submit('--after', a, '--shell', '--', `echo B >> ${order}`);
    const c = await submit('--after', b.slice(-8), '--shell', '--', `echo C >> ${order}`);
    expect(await show(c)).to.match(new RegExp(`Pending reason:\\s+waiting for ${b.slice(-8)}: pending`));
    await waitFor('A runs', () => existsSync(order) && readFileSync(order, 'utf8') === 'A\n');
    expect(await show(b)).to.match(new RegExp(`Pending reason:\\s+waiting for ${a.slice(-8)}: running`));
    await manager.daemon.kill9();
    manager = await startTheManager(manager.port);
    writeFileSync(go, '');
    const waited = await ctl('tasks', 'wait', a, b, c);
    expect(waited.code, waited.stderr).to.equal(0);
    expect(readFileSync(order, 'utf8')).to.equal('A\nB\nC\n');
    const shownA = await show(a);
    expect(shownA).to.match(/Dependents:\s+\S+ \(done, succeeded\)/);
    expect(await show(b)).to.match(new RegExp(`Dependencies:\\s+${a.slice(-8)} \\(after-ok: done, succeeded\\)`));
  });

  it('a failed dependency ends its dependents dead dependency-failed, down the chain; --after-failed runs', async () => {
    const x = await submit('--', 'false');
    const y = await submit('--after', x, '--', 'true');
    const z = await submit('--after-any', y, '--after', y, '--', 'true');
    const alert = await submit('--after-failed', x, '--', 'true');
    const waited = await ctl('tasks', 'wait', y, z, alert);
    expect(waited.code).to.equal(125); // a task is dead
    expect(await show(y)).to.match(/Dead reason:\s+dependency-failed/);
    expect(await show(y)).to.match(/Error:\s+dependency \S+ ended done \(exit 1\); it had to succeed/);
    expect(await show(z)).to.match(/Dead reason:\s+dependency-failed/);
    expect(await show(alert)).to.match(/State:\s+done/);
    const unknown = await ctl('tasks', 'run', '--after', 'nosuchtask', '--', 'true');
    expect(unknown.code).to.equal(1);
    expect(unknown.stderr).to.include('spec.after_ok[0]: no task or group "nosuchtask"');
  });

  it('--in and --at keep a task pending until then; hold, update and release act on it while pending', async () => {
    const later = await submit('--in', '1h', '--', 'true');
    expect(await show(later)).to.match(/Pending reason:\s+starts at \d{4}-\d\d-\d\dT/);
    const at = await submit('--at', '2020-01-01T00:00Z', '--', 'true'); // past: at once
    expect((await ctl('tasks', 'wait', at)).code).to.equal(0);
    const bad = await ctl('tasks', 'run', '--at', '2026-12-01 03:00', '--', 'true');
    expect(bad.code).to.equal(2);
    expect(bad.stderr).to.match(/with its zone/);

    const held = await ctl('tasks', 'hold', later, 'nope');
    expect(held.code).to.equal(1);
    expect(held.stdout.trim()).to.equal(`${later} held`);
    expect(held.stderr).to.include('nope');
    const shown = await show(later);
    expect(shown).to.match(/Pending reason:\s+held/);
    expect(shown).to.match(/Held:\s+yes/);
    const updated = await ctl('tasks', 'update', later, '--priority', '5', '-l', 'zone=b', '--cpu', '0.5');
    expect(updated.code, updated.stderr).to.equal(0);
    expect(updated.stdout).to.match(/Priority:\s+5/);
    expect(updated.stdout).to.match(/Constraints:\s+zone=b/);
    expect((await ctl('tasks', 'release', later)).stdout.trim()).to.equal(`${later} released`);
    expect(await show(later)).to.match(/Pending reason:\s+starts at/);
    expect((await ctl('tasks', 'hold', at)).stderr).to.match(/is done: only a pending task can be held/);
    const refused = await ctl('tasks', 'update', at, '--priority', '1');
    expect(refused.code).to.equal(1);
    expect(refused.stderr).to.match(/is done: only a pending task can be changed/);
  });

  it('a held task is not placed until released', async () => {
    const t = await submit('--in', '0s', '--label', 'nowhere=true', '--', 'true');
    expect((await ctl('tasks', 'hold', t)).code).to.equal(0);
    // Drop the constraint: held, it still is not placed.
    expect((await ctl('tasks', 'update', t, '--no-labels')).code).to.equal(0);
    expect(await show(t)).to.match(/State:\s+pending/);
    expect((await ctl('tasks', 'release', t)).code).to.equal(0);
    expect((await ctl('tasks', 'wait', t)).code).to.equal(0);
  });
});
