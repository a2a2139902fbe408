// schedctl tasks logs -f with the built binaries: a pending task is waited for,
// and a worker that is away for a few seconds and a manager killed and restarted
// are ridden out, the output complete and nothing printed twice.
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, run, startDaemon, startManager, waitFor, writeYaml, type Daemon, type ManagerHandle } from '../support/processes.js';

/** A running schedctl whose output is collected as it comes. */
function follow(args: string[]): { child: ChildProcess; out: () => string; err: () => string; exited: Promise<number | null> } {
  const child = spawn(BIN.schedctl, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, out: () => out, err: () => err, exited };
}

/** Lines 1..n, one every `gap` seconds, then the task ends. */
const counting = (n: number, gap: number) => `i=1; while [ $i -le ${n} ]; do echo line-$i; i=$((i+1)); sleep ${gap}; done`;
const expected = (n: number) => Array.from({ length: n }, (_, i) => `line-${i + 1}\n`).join('');

describe('e2e: schedctl tasks logs -f', function () {
  this.timeout(180_000);
  let dir: string;
  let manager: ManagerHandle;
  const daemons: Daemon[] = [];
  let worker: Daemon;
  const followers: ChildProcess[] = [];
  const ctl = (...args: string[]) => run(BIN.schedctl, ['--manager', manager.address, ...args], { timeoutMs: 90_000 });
  const submit = async (...args: string[]): Promise<string> => {
    const r = await ctl('tasks', 'run', ...args);
    expect(r.code, r.stderr).to.equal(0);
    return r.stdout.trim();
  };
  const startTheManager = async (port?: number) => {
    manager = await startManager({
      // A worker that stops answering is disconnected after about a second, and kept for 20 s.
      config: `store: {type: embedded, path: ${join(dir, 'store')}}\nping_interval: 300ms\nreconnect_grace: 20s\n`,
      yamlFile: join(dir, 'manager.yaml'),
      logFile: join(dir, 'manager.log'),
      ...(port !== undefined ? { port } : {}),
    });
    daemons.push(manager.daemon);
  };
  const startWorker = (name: string, labels = '{}') => {
    const wy = writeYaml(join(dir, `${name}.yaml`), `manager: ${manager.address}\nname: ${name}\ndata_dir: ${join(dir, name)}\nreconnect_max: 500ms\nlabels: ${labels}\n`);
    const d = startDaemon(BIN.worker, ['-f', wy], join(dir, `${name}.log`));
    daemons.push(d);
    return d;
  };
  const connected = (name: string) => waitFor(`${name} connected`, async () => new RegExp(`${name}\\s+connected`).test((await ctl('workers', 'ls')).stdout), 60_000);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sched-cli-logs-'));
    await startTheManager();
    // The tests' tasks go to w1 by its label, apart from the one that waits for a worker to come.
    worker = startWorker('w1', '{pool: main}');
    await connected('w1');
  });

  after(async () => {
    for (const c of followers) c.kill('SIGKILL');
    worker.signal('SIGCONT');
    await Promise.all(daemons.map((d) => d.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('on a pending task, says once that it waits for the start, then prints the output to the end', async () => {
    const id = await submit('--label', 'pool=late', '--shell', '--', counting(3, 0.1));
    const f = follow(['--manager', manager.address, 'tasks', 'logs', '-f', id]);
    followers.push(f.child);
    await waitFor('the wait said', () => f.err().includes('is pending; waiting for it to start'), 60_000);
    startWorker('late', '{pool: late}');
    expect(await f.exited).to.equal(0);
    expect(f.out()).to.equal(expected(3));
    expect(f.err().match(/is pending; waiting for it to start/g)).to.have.length(1);
  });

  it('rides out its worker away for a few seconds: says so plainly, then goes on where it was', async () => {
    const id = await submit('--label', 'pool=main', '--shell', '--', counting(30, 0.2));
    const f = follow(['--manager', manager.address, 'tasks', 'logs', '-f', id]);
    followers.push(f.child);
    await waitFor('some output', () => f.out().includes('line-3\n'), 60_000);
    // The worker stops answering (its task goes on writing its log); the manager drops its stream.
    worker.signal('SIGSTOP');
    try {
      await waitFor('the worker is away', () => f.err().includes("the task's worker"), 60_000);
    } finally {
      worker.signal('SIGCONT');
    }
    expect(await f.exited).to.equal(0);
    expect(f.out()).to.equal(expected(30));
    expect(f.err()).to.match(/schedctl: the task's worker \S+ is disconnected; waiting\n/);
    expect(f.err()).to.not.include('cannot reach');
  });

  it('rides out the manager killed and restarted, nothing printed twice', async () => {
    const id = await submit('--label', 'pool=main', '--shell', '--', counting(30, 0.2));
    const f = follow(['--manager', manager.address, 'tasks', 'logs', '-f', id]);
    followers.push(f.child);
    await waitFor('some output', () => f.out().includes('line-3\n'), 60_000);
    const port = manager.port;
    await manager.daemon.kill9();
    await startTheManager(port);
    expect(await f.exited).to.equal(0);
    expect(f.out()).to.equal(expected(30));
  });

  it('without -f, a disconnected worker is named as such, not as an unreachable manager', async () => {
    const id = await submit('--label', 'pool=main', '--shell', '--', 'echo hi; sleep 20');
    await waitFor('its output', async () => (await ctl('tasks', 'logs', id)).stdout === 'hi\n', 60_000);
    worker.signal('SIGSTOP');
    try {
      await waitFor('w1 disconnected', async () => /w1\s+disconnected/.test((await ctl('workers', 'ls')).stdout), 60_000);
      const r = await ctl('tasks', 'logs', id);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.match(/^schedctl: the task's worker \S+ is disconnected; task logs are kept on the worker/);
    } finally {
      worker.signal('SIGCONT');
    }
    await ctl('tasks', 'cancel', '--no-wait', id);
  });
});
