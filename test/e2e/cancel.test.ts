// schedctl tasks cancel with the built binaries: pending tasks die at once,
// running ones are stopped with every process they started.
import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from '../support/etcd.js';
import { BIN, run, startDaemon, waitFor, writeYaml, type Daemon } from '../support/processes.js';

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('e2e: schedctl tasks cancel', function () {
  this.timeout(60_000);
  let dir: string;
  let port: number;
  const daemons: Daemon[] = [];
  const leftovers: number[] = [];
  const ctl = (...args: string[]) => run(BIN.schedctl, ['--manager', `127.0.0.1:${port}`, ...args]);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sched-cancel-'));
    [port] = (await freePorts(1)) as [number];
    const yaml = writeYaml(
      join(dir, 'manager.yaml'),
      `listen: 127.0.0.1:${port}\nstore: {type: embedded, path: ${join(dir, 'store')}}\nping_interval: 300ms\n`,
    );
    daemons.push(startDaemon(BIN.manager, ['-f', yaml], join(dir, 'manager.log')));
    await waitFor('manager up', async () => (await ctl('status')).code === 0);
  });

  after(async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    for (const pid of leftovers) if (alive(pid)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('a pending task ends dead (cancelled) at once', async () => {
    const id = (await ctl('tasks', 'run', '--', 'true')).stdout.trim();
    expect((await ctl('tasks', 'show', id)).stdout).to.match(/State:\s+pending/);
    const r = await ctl('tasks', 'cancel', id);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout.trim()).to.equal(`${id} cancelled`);
    const show = (await ctl('tasks', 'show', id)).stdout;
    expect(show).to.match(/State:\s+dead/);
    expect(show).to.match(/Dead reason:\s+cancelled/);
  });

  it('a running task is stopped with its grandchildren and ends dead (cancelled)', async () => {
    const wy = writeYaml(join(dir, 'worker.yaml'), `manager: 127.0.0.1:${port}\ndata_dir: ${join(dir, 'worker')}\n`);
    daemons.push(startDaemon(BIN.worker, ['-f', wy], join(dir, 'worker.log')));
    await waitFor('worker connected', async () => /\bconnected\b/.test((await ctl('workers', 'ls')).stdout));
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
    await waitFor('no process of the task left', () => started.every((pid) => !alive(pid)), 5000);
    const show = (await ctl('tasks', 'show', id)).stdout;
    expect(show).to.match(/State:\s+dead/);
    expect(show).to.match(/Dead reason:\s+cancelled/);
  });

  it('a finished task is left as it is; an unknown id is an error naming it', async () => {
    const id = (await ctl('tasks', 'run', '--wait', '--', 'true')).stdout.trim();
    const r = await ctl('tasks', 'cancel', id);
    expect(r.stdout.trim()).to.equal(`${id} not cancelled: already done`);
    const bad = await ctl('tasks', 'cancel', 'nope');
    expect(bad.code).to.equal(1);
    expect(bad.stderr).to.match(/task "nope" not found/);
  });
});
