// The worker as an executor, with the built binaries and driven through
// schedctl only: argv/env/cwd/--shell/--timeout, logs relayed by the manager
// (follow, tail, stderr, cap), drain, node stats, a manager frozen past the
// ping timeout (results arrive exactly once), and graceful shutdown.
//
// Tasks that must be seen running wait for a file the test creates (gate()):
// nothing here depends on how fast a task, a worker or schedctl is.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, run, startDaemon, startManager, waitFor, writeYaml, type Daemon, type RunResult } from '../support/processes.js';

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

/** Prometheus text as series → value; every value must be a number. */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    const value = Number(line.slice(i + 1));
    expect(Number.isFinite(value), `${line}: a finite number`).to.equal(true);
    out.set(line.slice(0, i), value);
  }
  return out;
}

describe('e2e: worker lifecycle', function () {
  this.timeout(120_000);
  let dir: string;
  let address: string;
  let metricsPort: number;
  let manager: Daemon;
  const workers = new Map<string, Daemon>();
  const ids = new Map<string, string>(); // name → worker id
  const ctl = (...args: string[]) => run(BIN.schedctl, ['--manager', address, ...args]);
  let gates = 0;
  /**
   * A gate for tasks: `wait` is a shell snippet that marks the task started, then blocks until
   * open() is called (`block` only blocks); started() says whether a task got there.
   */
  const gate = () => {
    const n = ++gates;
    const started = join(dir, `gate-${n}.started`);
    const release = join(dir, `gate-${n}.open`);
    const block = `while [ ! -e ${release} ]; do sleep 0.05; done`;
    return {
      wait: `touch ${started}; ${block}`,
      block,
      started: () => existsSync(started),
      open: () => writeFileSync(release, ''),
    };
  };
  const scrape = async (): Promise<Map<string, number>> => {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(res.status).to.equal(200);
    return parseMetrics(await res.text());
  };
  /** A series' value; a counter not incremented yet is not exported, which is 0. */
  const metric = (m: Map<string, number>, series: string): number => m.get(series) ?? 0;
  /** Followers still running (a failed test's), stopped in after(). */
  const followers = new Set<ReturnType<typeof spawn>>();
  /** `schedctl tasks logs -f`, with its output readable while it runs. */
  const followLogs = (id: string) => {
    const child = spawn(BIN.schedctl, ['--manager', address, 'tasks', 'logs', '-f', id], { stdio: ['ignore', 'pipe', 'pipe'] });
    followers.add(child);
    child.once('exit', () => followers.delete(child));
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const done = new Promise<RunResult>((resolve) => child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr })));
    return { stdout: () => stdout, done };
  };
  const show = async (id: string): Promise<TaskJson> => JSON.parse((await ctl('tasks', 'show', '-o', 'json', id)).stdout) as TaskJson;
  const submit = async (...args: string[]): Promise<string> => {
    const r = await ctl('tasks', 'run', ...args);
    expect(r.code, r.stderr).to.equal(0);
    return r.stdout.trim();
  };
  const workerRow = async (name: string) => (await ctl('-o', 'wide', 'workers', 'ls')).stdout.split('\n').find((l) => l.startsWith(ids.get(name)!)) ?? '';
  const startWorker = async (name: string, extra = '') => {
    const yaml = writeYaml(
      join(dir, `${name}.yaml`),
      `manager: ${address}\ndata_dir: ${join(dir, name)}\nreconnect_interval: 200ms\nreconnect_max: 1s\n` +
        `capacity: {cpu: 2, memory: 2Gi}\nlabels: {name: ${name}}\nlog_max_size: 64Ki\n${extra}`,
    );
    workers.set(name, startDaemon(BIN.worker, ['-f', yaml], join(dir, `${name}.log`)));
    const id = await waitFor(`${name} id`, () => existsSync(join(dir, name, 'worker-id')) && readFileSync(join(dir, name, 'worker-id'), 'utf8').trim());
    ids.set(name, id);
    await waitFor(`${name} connected`, async () => /\sconnected\s/.test(await workerRow(name)));
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sched-lifecycle-'));
    const started = await startManager({
      config: `store: {type: embedded, path: ${join(dir, 'store')}}\nping_interval: 300ms\nreconnect_grace: 20s\nmetrics_listen: 127.0.0.1:0\n`,
      yamlFile: join(dir, 'manager.yaml'),
      logFile: join(dir, 'manager.log'),
    });
    manager = started.daemon;
    address = started.address;
    metricsPort = started.metricsPort!;
    await startWorker('a');
    await startWorker('b');
  });

  after(async () => {
    for (const child of followers) child.kill('SIGKILL');
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
    // Two lines, then the task waits until the follower has them; then two more, and it ends.
    const g = gate();
    const id = await submit('--', 'sh', '-c', `for i in 1 2; do echo line$i; echo err$i >&2; done; ${g.wait}; for i in 3 4; do echo line$i; echo err$i >&2; done`);
    await waitFor('running', g.started);
    const follow = followLogs(id);
    await waitFor('the follower has the output so far', () => follow.stdout().includes('line2\n'));
    g.open();
    const followed = await follow.done;
    expect(followed.code, followed.stderr).to.equal(0);
    expect(followed.stdout).to.equal('line1\nline2\nline3\nline4\n');
    await waitFor('done', async () => (await show(id)).state === 'TASK_STATE_DONE');
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
    expect(row.slice(5, 8)).to.deep.equal(['1.5/2', '512Mi/2.0Gi', '1']);
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
    const g = gate();
    const running = await submit('--label', 'name=a', '--', 'sh', '-c', g.wait);
    await waitFor('running', g.started);
    expect((await ctl('workers', 'drain', ids.get('a')!)).code).to.equal(0);
    expect(await workerRow('a')).to.match(/connected,draining/);
    const waiting = await submit('--label', 'name=a', '--', 'true');
    await waitFor('pending reason', async () => /1 draining/.test((await show(waiting)).pendingReason ?? ''));
    g.open();
    const t = await waitFor('running task finished', async () => {
      const s = await show(running);
      return s.state === 'TASK_STATE_DONE' && s;
    });
    expect(t.exitCode ?? 0).to.equal(0);
    // Room was freed on the drained worker, and still nothing was offered to it.
    expect(await show(waiting)).to.deep.include({ state: 'TASK_STATE_PENDING' });
    expect((await show(waiting)).attempt ?? 0).to.equal(0);
    expect((await ctl('workers', 'undrain', ids.get('a')!)).code).to.equal(0);
    await waitFor('placed after undrain', async () => (await show(waiting)).state === 'TASK_STATE_DONE');
  });

  it('a manager frozen past the ping timeout: tasks keep running, and each result arrives exactly once', async () => {
    const file = join(dir, 'frozen.out');
    const g = gate();
    // Each task marks its start, waits for the gate, then appends its id once.
    const script = `touch ${dir}/frozen-started.$SCHED_TASK_ID; ${g.block}; echo $SCHED_TASK_ID >> ${file}`;
    const before = await scrape();
    const tasks = await Promise.all(Array.from({ length: 6 }, () => submit('--', 'sh', '-c', script)));
    await waitFor('all six running', () => tasks.every((id) => existsSync(join(dir, `frozen-started.${id}`))), 30_000);
    const logFrom = new Map(['a', 'b'].map((n) => [n, workers.get(n)!.log().length]));
    const lines = () => (existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n') : []);
    manager.signal('SIGSTOP');
    try {
      // The workers give the silent manager up (after 5 s, their floor); then the tasks finish.
      await waitFor('both workers lost the manager', () => ['a', 'b'].every((n) => workers.get(n)!.log().slice(logFrom.get(n)).includes('lost connection to manager')), 60_000, 200);
      g.open();
      await waitFor('the six tasks finished while the manager was frozen', () => lines().length === 6, 30_000);
    } finally {
      manager.signal('SIGCONT');
    }
    const finals = await waitFor('all done', async () => {
      const all = await Promise.all(tasks.map(show));
      return all.every((t) => t.state === 'TASK_STATE_DONE') && all;
    }, 60_000, 200);
    for (const t of finals) expect([t.attempt, t.exitCode ?? 0]).to.deep.equal([1, 0]);
    expect(lines().sort()).to.deep.equal([...tasks].sort());
    // Every result was resent after the reconnect, and each counted once.
    const after = await scrape();
    expect(metric(after, 'sched_tasks_done_total') - metric(before, 'sched_tasks_done_total')).to.equal(6);
    expect(metric(after, 'sched_tasks_submitted_total') - metric(before, 'sched_tasks_submitted_total')).to.equal(6);
    expect(metric(after, 'sched_offers_total') - metric(before, 'sched_offers_total')).to.equal(6);
    expect(metric(after, 'sched_tasks_retried_total') - metric(before, 'sched_tasks_retried_total')).to.equal(0);
  });

  it('SIGTERM to a worker: no new tasks, running ones finish and are reported, then it says goodbye', async () => {
    await startWorker('c', 'shutdown_timeout: 20s\n');
    const g = gate();
    const id = await submit('--label', 'name=c', '--', 'sh', '-c', `${g.wait}; echo finished`);
    await waitFor('running', g.started);
    const c = workers.get('c')!;
    c.signal('SIGTERM');
    await waitFor('leaving', async () => /connected,leaving/.test(await workerRow('c')));
    const refused = await submit('--label', 'name=c', '--', 'true');
    g.open(); // the running task may end now
    expect(await c.exited).to.equal(0);
    const t = await show(id);
    expect(t).to.include({ state: 'TASK_STATE_DONE' });
    expect(t.exitCode ?? 0).to.equal(0);
    expect(await workerRow('c')).to.match(/\sdisconnected\s/);
    expect(manager.log()).to.match(/goodbye: worker-node received SIGTERM/);
    // Checked after the worker is gone: in all that time the task was never offered to it.
    const waited = await show(refused);
    expect(waited.state).to.equal('TASK_STATE_PENDING');
    expect(waited.attempt ?? 0).to.equal(0);
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
    // This test makes each thing it counts: one task done, one cancelled, one that cannot
    // start, one lost with its worker, one queued; and compares the counters before and after.
    const before = await scrape();
    await submit('--wait', '--', 'true');
    const pending = await submit('--label', 'name=nowhere', '--', 'true');
    const queued = await scrape();
    expect(metric(queued, 'sched_queue_tasks{stage="queued"}')).to.equal(metric(before, 'sched_queue_tasks{stage="queued"}') + 1);
    expect((await ctl('tasks', 'cancel', pending)).code).to.equal(0);
    const missing = await ctl('tasks', 'run', '--wait', '--', '/nonexistent/command');
    expect(missing.code, missing.stderr).to.equal(127);
    await startWorker('m', 'shutdown_timeout: 300ms\n');
    const lost = await submit('--label', 'name=m', '--', 'sleep', '30');
    await waitFor('running', async () => (await show(lost)).state === 'TASK_STATE_SCHEDULED');
    workers.get('m')!.signal('SIGTERM');
    expect(await workers.get('m')!.exited).to.equal(0);
    expect(await show(lost)).to.include({ state: 'TASK_STATE_DEAD', deadReason: 'worker-lost' });

    const after = await scrape();
    const delta = (series: string) => metric(after, series) - metric(before, series);
    expect(delta('sched_tasks_submitted_total')).to.equal(4);
    expect(delta('sched_tasks_done_total')).to.equal(1);
    expect(delta('sched_tasks_dead_total{reason="cancelled"}')).to.equal(1);
    expect(delta('sched_tasks_dead_total{reason="start-failed"}')).to.equal(1);
    expect(delta('sched_tasks_dead_total{reason="worker-lost"}')).to.equal(1);
    expect(delta('sched_store_commit_seconds_count{result="ok"}')).to.be.greaterThan(0);
    expect(metric(after, 'sched_queue_tasks{stage="queued"}')).to.equal(metric(before, 'sched_queue_tasks{stage="queued"}'));
    expect(after.has('sched_manager_process_cpu_seconds_total')).to.equal(true);
    // Gauges read from the same state as status, with nothing running meanwhile.
    const status = JSON.parse((await ctl('status', '-o', 'json')).stdout) as { tasksByState: Record<string, number>; workersConnected: number };
    const now = await scrape();
    for (const state of ['pending', 'scheduled', 'done', 'dead']) {
      expect(metric(now, `sched_tasks{state="${state}"}`), state).to.equal(status.tasksByState[state] ?? 0);
    }
    expect(metric(now, 'sched_workers{state="connected"}')).to.equal(status.workersConnected);
    expect(await (await fetch(`http://127.0.0.1:${metricsPort}/healthz`)).text()).to.equal('ok\n');
    expect((await fetch(`http://127.0.0.1:${metricsPort}/nope`)).status).to.equal(404);
  });
});
