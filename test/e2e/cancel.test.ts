// schedctl tasks cancel with the built binaries: pending tasks die at once,
// running ones are stopped with every process they started. Each test sets up
// what it needs (a worker when it runs something), so any one runs alone.
import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, run, startLocalManager, startWorker, waitFor, type Daemon } from '../support/processes.js';
import { alive } from '../support/proc.js';

describe('e2e: schedctl tasks cancel', function () {
  this.timeout(60_000);
  let dir: string;
  let address: string;
  const daemons: Daemon[] = [];
  const leftovers: number[] = [];
  let worker: Promise<void> | undefined;
  const ctl = (...args: string[]) => run(BIN.schedctl, ['--manager', address, ...args]);
  /** Starts the one worker of this suite (once) and waits until it is connected. */
  const withWorker = () =>
    (worker ??= (async () => {
      daemons.push(await startWorker(address, dir));
    })());

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sched-cancel-'));
    const manager = await startLocalManager(dir);
    daemons.push(manager.daemon);
    address = manager.address;
  });

  after(async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    for (const pid of leftovers) if (alive(pid)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('a pending task ends dead (cancelled) at once', async () => {
    // No worker carries this label: the task stays pending whatever else is connected.
    const submitted = await ctl('tasks', 'run', '--label', 'nowhere=true', '--', 'true');
    expect(submitted.code, submitted.stderr).to.equal(0);
    const id = submitted.stdout.trim();
    expect((await ctl('tasks', 'show', id)).stdout).to.match(/State:\s+pending/);
    const r = await ctl('tasks', 'cancel', id);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout.trim()).to.equal(`${id} cancelled`);
    const show = (await ctl('tasks', 'show', id)).stdout;
    expect(show).to.match(/State:\s+dead/);
    expect(show).to.match(/Dead reason:\s+cancelled/);
    const json = JSON.parse((await ctl('tasks', 'show', '-o', 'json', id)).stdout) as { attempt?: number };
    expect(json.attempt ?? 0, 'never offered to a worker').to.equal(0);
  });

  it('cancels every valid id, reports each unknown one, and exits 1', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const submitted = await ctl('tasks', 'run', '--label', 'nowhere=true', '--', 'true');
      expect(submitted.code, submitted.stderr).to.equal(0);
      ids.push(submitted.stdout.trim());
    }
    const r = await ctl('tasks', 'cancel', ids[0]!, 'nope', ids[1]!);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.include('task "nope" not found');
    expect(r.stdout.trim().split('\n').sort()).to.deep.equal(ids.map((id) => `${id} cancelled`).sort());
    for (const id of ids) expect((await ctl('tasks', 'show', id)).stdout).to.match(/Dead reason:\s+cancelled/);
  });

  it('a running task is stopped with its grandchildren and ends dead (cancelled)', async () => {
    await withWorker();
    const pids = join(dir, 'pids');
    // A shell that ignores SIGTERM, with two grandchildren in the background: only the group kill after the grace stops them all.
    const script = `trap '' TERM; sleep 300 & echo $! >> ${pids}; (sleep 300 & echo $! >> ${pids}; wait) & echo $$ >> ${pids}; wait`;
    const id = (await ctl('tasks', 'run', '--', 'sh', '-c', script)).stdout.trim();
    const started = await waitFor('three pids', () => {
      const list = existsSync(pids) ? readFileSync(pids, 'utf8').trim().split('\n').map(Number) : [];
      return list.length >= 3 && list;
    });
    leftovers.push(...started);
    expect(started.every(alive)).to.equal(true);
    const r = await ctl('tasks', 'cancel', '--grace', '500ms', id);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout.trim()).to.equal(`${id} cancelled (SIGKILL)`);
    await waitFor('no process of the task left', () => started.every((pid) => !alive(pid)), 15_000);
    const show = (await ctl('tasks', 'show', id)).stdout;
    expect(show).to.match(/State:\s+dead/);
    expect(show).to.match(/Dead reason:\s+cancelled/);
  });

  it('a finished task is left as it is; an unknown id is an error naming it', async () => {
    await withWorker();
    const done = await ctl('tasks', 'run', '--wait', '--', 'true');
    expect(done.code, done.stderr).to.equal(0);
    const id = done.stdout.trim();
    const r = await ctl('tasks', 'cancel', id);
    expect(r.stdout.trim()).to.equal(`${id} not cancelled: already done`);
    expect((await ctl('tasks', 'show', id)).stdout).to.match(/State:\s+done/);
    const bad = await ctl('tasks', 'cancel', 'nope');
    expect(bad.code).to.equal(1);
    expect(bad.stderr).to.match(/task "nope" not found/);
  });
});
