// The worker as an executor, with the built binaries and driven through
// schedctl only: argv/env/cwd/--shell/--timeout, logs relayed by the manager
// (follow, tail, stderr, cap), drain, node stats, a manager frozen past the
// ping timeout (results arrive exactly once), and graceful shutdown.
import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePorts } from '../support/etcd.js';
import { BIN, run, startDaemon, waitFor, writeYaml, type Daemon } from '../support/processes.js';

interface TaskJson {
  id: string;
  state: string;
  exitCode?: number;
  signal?: string;
  timedOut?: boolean;
  workerId?: string;
  deadReason?: string;
  attempt?: number;
  pendingReason?: string;
}

describe('e2e: worker lifecycle', function () {
  this.timeout(120_000);
  let dir: string;
  let port: number;
  let metricsPort: number;
  let manager: Daemon;
  const workers = new Map<string, Daemon>();
  const ids = new Map<string, string>(); // name → worker id
  const ctl = (...args: string[]) => run(BIN.schedctl, ['--manager', `127.0.0.1:${port}`, ...args]);
  const show = async (id: string): Promise<TaskJson> => JSON.parse((await ctl('tasks', 'show', '-o', 'json', id)).stdout) as TaskJson;
  const submit = async (...args: string[]): Promise<string> => {
    const r = await ctl('tasks', 'run', ...args);
    expect(r.code, r.stderr).to.equal(0);
    return r.stdout.trim();
  };
  const workerRow = async (name: string) => (await ctl('workers', 'ls')).stdout.split('\n').find((l) => l.startsWith(ids.get(name)!)) ?? '';
  const startWorker = async (name: string, extra = '') => {
    const yaml = writeYaml(
      join(dir, `${name}.yaml`),
      `manager: 127.0.0.1:${port}\ndata_dir: ${join(dir, name)}\nreconnect_interval: 200ms\nreconnect_max: 1s\n` +
        `capacity: {cpu: 2, memory: 2Gi}\nlabels: {name: ${name}}\nlog_max_size: 64Ki\n${extra}`,
    );
    workers.set(name, startDaemon(BIN.worker, ['-f', yaml], join(dir, `${name}.log`)));
    const id = await waitFor(`${name} id`, () => existsSync(join(dir, name, 'worker-id')) && readFileSync(join(dir, name, 'worker-id'), 'utf8').trim());
    ids.set(name, id);
    await waitFor(`${name} connected`, async () => /\sconnected\s/.test(await workerRow(name)));
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sched-lifecycle-'));
    [port, metricsPort] = (await freePorts(2)) as [number, number];
    const yaml = writeYaml(
      join(dir, 'manager.yaml'),
      `listen: 127.0.0.1:${port}\nstore: {type: embedded, path: ${join(dir, 'store')}}\nping_interval: 300ms\nreconnect_grace: 20s\n` +
        `metrics_listen: 127.0.0.1:${metricsPort}\n`,
    );
    manager = startDaemon(BIN.manager, ['-f', yaml], join(dir, 'manager.log'));
    await startWorker('a');
    await startWorker('b');
  });

  after(async () => {
    await Promise.all([...workers.values(), manager].map((d) => d.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs argv without a shell, with --env and --cwd; --shell runs a command line', async () => {
    const plain = await submit('--wait', '-e', 'GREETING=hi there', '--cwd', dir, '--', 'sh', '-c', 'echo "$GREETING from $(pwd)"; echo "$0"', '$HOME');
    expect((await ctl('tasks', 'logs', plain)).stdout).to.equal(`hi there from ${dir}\n$HOME\n`);
    const literal = await submit('--wait', '--', 'echo', '$HOME', '|', 'wc');
    expect((await ctl('tasks', 'logs', literal)).stdout).to.equal('$HOME | wc\n');
    const shell = await submit('--wait', '--shell', '--', 'echo', 'a b c', '|', 'wc', '-w');
    expect((await ctl('tasks', 'logs', shell)).stdout.trim()).to.equal('3');
  });

  it('--timeout kills the task\'s group; it ends done, timed out, with the signal', async () => {
    const r = await ctl('tasks', 'run', '--wait', '--timeout', '500ms', '--', 'sh', '-c', 'sleep 30 & wait');
    expect(r.code).to.equal(143); // 128 + SIGTERM
    expect(r.stderr).to.match(/timed out and was killed by SIGTERM/);
    const t = await show(r.stdout.trim());
    expect(t).to.include({ state: 'TASK_STATE_DONE', timedOut: true, signal: 'SIGTERM' });
    expect((await ctl('tasks', 'show', t.id)).stdout).to.match(/Timed out:\s+yes/);
  });

  it('tasks logs: -f follows until the task ends; --tail; --stderr; output past the cap is dropped', async () => {
    const id = await submit('--', 'sh', '-c', 'for i in 1 2 3 4; do echo line$i; echo err$i >&2; sleep 0.3; done');
    await waitFor('running', async () => (await show(id)).state === 'TASK_STATE_SCHEDULED');
    const followed = await ctl('tasks', 'logs', '-f', id);
    expect(followed.code, followed.stderr).to.equal(0);
    expect(followed.stdout).to.equal('line1\nline2\nline3\nline4\n');
    expect((await show(id)).state).to.equal('TASK_STATE_DONE');
    expect((await ctl('tasks', 'logs', '--tail', '2', id)).stdout).to.equal('line3\nline4\n');
    expect((await ctl('tasks', 'logs', '--stderr', '--tail', '1', id)).stdout).to.equal('err4\n');

    // 200,000 bytes against a 64 KiB cap (log_max_size, stdout and stderr together): the first 64 KiB stay, and a line says why it stops.
    const big = await submit('--wait', '--', 'sh', '-c', "head -c 200000 /dev/zero | tr '\\0' x; echo; echo tail-line");
    const out = (await ctl('tasks', 'logs', big)).stdout;
    expect(out.startsWith('x'.repeat(65536))).to.equal(true);
    expect(out.slice(65536)).to.equal("\n[sched: output truncated: the task's logs reached their limit of 65536 bytes]\n");
    // The result still carries the real end of the output.
    expect((await ctl('tasks', 'show', big)).stdout).to.match(/tail-line/);

    const pending = await submit('--label', 'name=nowhere', '--', 'true');
    const r = await ctl('tasks', 'logs', pending);
    expect([r.code, r.stderr.trim()]).to.deep.equal([1, `schedctl: task ${pending} has not run yet (pending): it has no logs`]);
    await ctl('tasks', 'cancel', pending);
  });

  it('workers ls and show report reserved resources, load and running tasks', async () => {
    const id = await submit('--cpu', '1.5', '--mem', '512Mi', '--label', 'name=a', '--', 'sleep', '30');
    await waitFor('running', async () => (await show(id)).state === 'TASK_STATE_SCHEDULED');
    const row = (await workerRow('a')).split(/\s{2,}/);
    expect(row.slice(4, 7)).to.deep.equal(['1.5/2', '512Mi/2.0Gi', '1']);
    await waitFor('load reported', async () => !/Load average:\s+-/.test((await ctl('workers', 'show', ids.get('a')!)).stdout));
    const detail = (await ctl('workers', 'show', ids.get('a')!)).stdout;
    expect(detail).to.match(/CPU reserved:\s+1\.5\/2/);
    expect(detail).to.match(/Load average:\s+[\d.]+ [\d.]+ [\d.]+/);
    expect(detail).to.match(/Memory free:\s+\d/);
    expect(detail).to.match(/Kernel:\s+\S/);
    expect(detail).to.include(`${id}  sleep 30`);
    await ctl('tasks', 'cancel', '--grace', '100ms', id);
  });

  it('drain stops new placements on a worker; undrain resumes them; running tasks go on', async () => {
    const running = await submit('--label', 'name=a', '--', 'sleep', '2');
    await waitFor('running', async () => (await show(running)).state === 'TASK_STATE_SCHEDULED');
    expect((await ctl('workers', 'drain', ids.get('a')!)).code).to.equal(0);
    expect(await workerRow('a')).to.match(/connected,draining/);
    const waiting = await submit('--label', 'name=a', '--', 'true');
    await waitFor('pending reason', async () => /1 draining/.test((await show(waiting)).pendingReason ?? ''));
    const t = await waitFor('running task finished', async () => {
      const s = await show(running);
      return s.state === 'TASK_STATE_DONE' && s;
    });
    expect(t.exitCode ?? 0).to.equal(0);
    expect((await show(waiting)).state).to.equal('TASK_STATE_PENDING');
    expect((await ctl('workers', 'undrain', ids.get('a')!)).code).to.equal(0);
    await waitFor('placed after undrain', async () => (await show(waiting)).state === 'TASK_STATE_DONE');
  });

  it('a manager frozen past the ping timeout: tasks keep running, and each result arrives exactly once', async () => {
    const file = join(dir, 'frozen.out');
    const tasks = await Promise.all(
      Array.from({ length: 6 }, () => submit('--', 'sh', '-c', `sleep 1.5; echo $SCHED_TASK_ID >> ${file}`)),
    );
    await waitFor('all running', async () => (await Promise.all(tasks.map(show))).every((t) => t.state === 'TASK_STATE_SCHEDULED'));
    manager.signal('SIGSTOP');
    try {
      // The workers give the silent manager up after 5 s (their floor), and the tasks finish meanwhile.
      await sleep(6500);
    } finally {
      manager.signal('SIGCONT');
    }
    const finals = await waitFor('all done', async () => {
      const all = await Promise.all(tasks.map(show));
      return all.every((t) => t.state === 'TASK_STATE_DONE') && all;
    }, 30_000, 200);
    for (const t of finals) expect([t.attempt, t.exitCode ?? 0]).to.deep.equal([1, 0]);
    const lines = readFileSync(file, 'utf8').trim().split('\n').sort();
    expect(lines).to.deep.equal([...tasks].sort());
    for (const name of ['a', 'b']) expect(workers.get(name)!.log()).to.match(/lost connection to manager/);
  });

  it('SIGTERM to a worker: no new tasks, running ones finish and are reported, then it says goodbye', async () => {
    await startWorker('c', 'shutdown_timeout: 20s\n');
    const id = await submit('--label', 'name=c', '--', 'sh', '-c', 'sleep 1.5; echo finished');
    await waitFor('running', async () => (await show(id)).state === 'TASK_STATE_SCHEDULED');
    const c = workers.get('c')!;
    c.signal('SIGTERM');
    await waitFor('leaving', async () => /connected,leaving/.test(await workerRow('c')));
    const refused = await submit('--label', 'name=c', '--', 'true');
    expect((await show(refused)).state).to.equal('TASK_STATE_PENDING');
    expect(await c.exited).to.equal(0);
    const t = await show(id);
    expect(t).to.include({ state: 'TASK_STATE_DONE' });
    expect(t.exitCode ?? 0).to.equal(0);
    expect(await workerRow('c')).to.match(/\sdisconnected\s/);
    expect(manager.log()).to.match(/goodbye: worker-node received SIGTERM/);
    await ctl('tasks', 'cancel', refused);
  });

  it('past shutdown_timeout the rest are killed and lost; a second SIGTERM stops at once', async () => {
    await startWorker('d', 'shutdown_timeout: 500ms\n');
    const slow = await submit('--label', 'name=d', '--', 'sleep', '30');
    await waitFor('running', async () => (await show(slow)).state === 'TASK_STATE_SCHEDULED');
    workers.get('d')!.signal('SIGTERM');
    expect(await workers.get('d')!.exited).to.equal(0);
    const lost = await show(slow);
    expect(lost).to.include({ state: 'TASK_STATE_DEAD', deadReason: 'worker-lost' });

    await startWorker('d', 'shutdown_timeout: 60s\n');
    const other = await submit('--label', 'name=d', '--', 'sleep', '30');
    await waitFor('running', async () => (await show(other)).state === 'TASK_STATE_SCHEDULED');
    const d = workers.get('d')!;
    d.signal('SIGTERM');
    await waitFor('leaving', async () => /connected,leaving/.test(await workerRow('d')));
    d.signal('SIGTERM');
    expect(await d.exited).to.equal(0);
    expect(await show(other)).to.include({ state: 'TASK_STATE_DEAD', deadReason: 'worker-lost' });
  });

  it('serves Prometheus metrics that agree with schedctl status', async () => {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(res.status).to.equal(200);
    const text = await res.text();
    const value = (series: string): number => {
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      expect(line, series).to.be.a('string');
      return Number(line!.split(' ')[1]);
    };
    const status = JSON.parse((await ctl('status', '-o', 'json')).stdout) as { tasksByState: Record<string, number>; workersConnected: number };
    expect(value('sched_tasks{state="done"}')).to.equal(status.tasksByState.done);
    expect(value('sched_workers{state="connected"}')).to.equal(status.workersConnected);
    expect(value('sched_tasks_submitted_total')).to.be.greaterThan(10);
    expect(value('sched_tasks_dead_total{reason="cancelled"}')).to.be.at.least(1);
    expect(value('sched_tasks_dead_total{reason="worker-lost"}')).to.be.at.least(2);
    expect(value('sched_store_commit_seconds_count{result="ok"}')).to.be.greaterThan(0);
    expect(value('sched_queue_tasks{stage="queued"}')).to.be.a('number');
    expect(text).to.match(/^sched_manager_process_cpu_seconds_total /m);
    expect(await (await fetch(`http://127.0.0.1:${metricsPort}/healthz`)).text()).to.equal('ok\n');
    expect((await fetch(`http://127.0.0.1:${metricsPort}/nope`)).status).to.equal(404);
  });
});
