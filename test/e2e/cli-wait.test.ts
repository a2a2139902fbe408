// schedctl tasks wait (and the wait tasks run --wait shares) and schedctl events,
// with the built binaries: exit codes, pending tasks no worker fits, a manager
// killed and restarted under a wait and under the event stream, and Ctrl-C.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, run, startDaemon, startLocalManager, waitFor, writeYaml, type Daemon, type ManagerHandle } from '../support/processes.js';

describe('e2e: schedctl tasks wait and events', function () {
  this.timeout(120_000);
  let dir: string;
  let manager: ManagerHandle;
  const daemons: Daemon[] = [];
  const ctl = (...args: string[]) => run(BIN.schedctl, ['--manager', manager.address, ...args], { timeoutMs: 90_000 });
  const submit = async (...args: string[]): Promise<string> => {
    const r = await ctl('tasks', 'run', ...args);
    expect(r.code, r.stderr).to.equal(0);
    return r.stdout.trim();
  };
  const state = async (id: string): Promise<string> => (JSON.parse((await ctl('-o', 'json', 'tasks', 'show', id)).stdout) as { state: string }).state;
  const startTheManager = async (port?: number) => {
    manager = await startLocalManager(dir, '', port);
    daemons.push(manager.daemon);
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sched-cli-wait-'));
    await startTheManager();
    const wy = writeYaml(join(dir, 'worker.yaml'), `manager: ${manager.address}\ndata_dir: ${join(dir, 'worker')}\nreconnect_max: 500ms\n`);
    daemons.push(startDaemon(BIN.worker, ['-f', wy], join(dir, 'worker.log')));
    await waitFor('worker connected', async () => /\bconnected\b/.test((await ctl('workers', 'ls')).stdout));
  });

  after(async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it("exits with the first failing task's exit code in the order given, a line on stderr per task", async () => {
    const ok = await submit('--shell', '--', 'sleep 0.5; exit 0');
    const three = await submit('--shell', '--', 'exit 3');
    const five = await submit('--shell', '--', 'exit 5');
    const r = await ctl('tasks', 'wait', ok, five, three);
    expect(r.code, r.stderr).to.equal(5);
    expect(r.stdout).to.equal('');
    expect(r.stderr.trimEnd().split('\n').sort()).to.deep.equal(
      [`schedctl: task ${ok} succeeded`, `schedctl: task ${three} exited with 3`, `schedctl: task ${five} exited with 5`].sort(),
    );
    expect((await ctl('tasks', 'wait', ok)).code).to.equal(0);
  });

  it('--group waits for every member of a tasks run --count group', async () => {
    const ids = (await submit('--count', '3', '--shell', '--', 'sleep 0.3; exit 0')).split('\n');
    const group = (JSON.parse((await ctl('-o', 'json', 'tasks', 'show', ids[0]!)).stdout) as { groupId: string }).groupId;
    const r = await ctl('-o', 'json', 'tasks', 'wait', '--group', group);
    expect(r.code, r.stderr).to.equal(0);
    const ended = (JSON.parse(r.stdout) as { tasks: Array<{ id: string; state: string }> }).tasks;
    expect(ended.map((t) => t.id).sort()).to.deep.equal([...ids].sort());
    expect(ended.every((t) => t.state === 'TASK_STATE_DONE')).to.equal(true);
  });

  it('tasks run --wait exits 125 with the reason when no connected worker could ever fit the task (it stays pending)', async () => {
    const r = await ctl('tasks', 'run', '--wait', '--mem', '1000Ti', '--', 'true');
    expect(r.code).to.equal(125);
    expect(r.stderr).to.match(/cannot run: .*no connected worker could ever fit it; it stays pending/);
    const id = r.stdout.trim();
    expect(await state(id)).to.equal('TASK_STATE_PENDING');
    await ctl('tasks', 'cancel', id);
  });

  it('on Ctrl-C says how to wait again, cancels nothing, and exits 130', async () => {
    const id = await submit('--', 'sleep', '30');
    await waitFor('running', async () => (await state(id)) === 'TASK_STATE_SCHEDULED');
    const child = spawn(BIN.schedctl, ['--manager', manager.address, 'tasks', 'run', '--wait', '--', 'sleep', '30'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await waitFor('the id printed', () => out.trim().length > 0, 60_000);
      const second = out.trim();
      await waitFor('running', async () => (await state(second)) === 'TASK_STATE_SCHEDULED');
      child.kill('SIGINT');
      expect(await exited).to.equal(130);
      expect(err).to.include(`  ${second} running\n`);
      expect(err).to.include(`schedctl: wait again with: schedctl tasks wait ${second}\n`);
      expect(await state(second)).to.equal('TASK_STATE_SCHEDULED');
      await ctl('tasks', 'cancel', '--no-wait', second);
    } finally {
      child.kill('SIGKILL');
      await ctl('tasks', 'cancel', '--no-wait', id);
    }
  });

  it('a wait and the event stream ride out the manager killed and restarted', async () => {
    const id = await submit('--shell', '--', 'sleep 4; exit 4');
    await waitFor('running', async () => (await state(id)) === 'TASK_STATE_SCHEDULED');
    const events = spawn(BIN.schedctl, ['--manager', manager.address, 'events', '--tasks'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let lines = '';
    events.stdout.on('data', (d: Buffer) => (lines += d.toString()));
    const eventsExited = new Promise<number | null>((resolve) => events.once('exit', (code) => resolve(code)));
    try {
      const waiting = ctl('tasks', 'wait', id);
      // The event stream is attached once a change made now shows up on it (a marker whose
      // changes all came before it attached never shows: then another is submitted).
      await waitFor('the event stream attached', async () => {
        const marker = (await submit('--', 'true')).slice(-8);
        return waitFor('the marker', () => lines.includes(`  ${marker}  `), 3000).then(() => true, () => false);
      }, 60_000);
      const port = manager.port;
      await manager.daemon.kill9();
      await startTheManager(port);
      const r = await waiting;
      expect(r.code, r.stderr).to.equal(4);
      const short = id.slice(-8);
      await waitFor("the task's end among the events", () => new RegExp(`task\\s+${short}\\s+done\\s+exit 4`).test(lines), 60_000);
      events.kill('SIGINT');
      expect(await eventsExited).to.equal(130);
    } finally {
      events.kill('SIGKILL');
    }
  });

  it('a wait begun while the manager is down waits for it to come back', async () => {
    const id = await submit('--shell', '--', 'exit 5');
    await waitFor('done', async () => (await state(id)) === 'TASK_STATE_DONE');
    const port = manager.port;
    await manager.daemon.kill9();
    // Its first read is refused (nothing listens): it retries rather than fails.
    const waiting = ctl('tasks', 'wait', id);
    await startTheManager(port);
    const r = await waiting;
    expect(r.code, r.stderr).to.equal(5);
  });
});
