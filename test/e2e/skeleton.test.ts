// The walking skeleton end to end: a real etcd, the built management node and
// built workers as child processes, driven through the built schedctl. Each
// test runs alone: the tests that only look use one shared cluster (a manager
// and two workers, started the first time a test needs it and never disturbed);
// a test that kills, stops or restarts a daemon starts a cluster of its own.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { fromBinary } from '@bufbuild/protobuf';
import { TaskSchema, TaskState, WorkerSchema, WorkerState } from '../../proto/gen/schedapi/v1/types_pb.js';
import { startEtcd, freePorts, type EtcdHandle } from '../support/etcd.js';
import { BIN, run, startDaemon, startManager, waitFor, writeYaml, type Daemon, type RunResult } from '../support/processes.js';

const PING_MS = 250;

/** A manager (etcd store, a prefix of its own) and its workers. */
interface Cluster {
  readonly address: string;
  /** The etcd key prefix of its store, ending in "/". */
  readonly prefix: string;
  readonly schedctlYaml: string;
  manager: Daemon;
  readonly workers: Daemon[];
  ctl(...args: string[]): Promise<RunResult>;
  /** The rows of `workers ls`, without the header. */
  workerRows(): Promise<string[]>;
  connectedCount(): Promise<number>;
  /** The id worker i (0-based) stored in its data dir. */
  workerId(i: number): string;
  /** Starts the manager again on the port the workers dial, once the last one is gone; resolves when it is ready. */
  restartManager(): Promise<void>;
}

/**
 * Runs schedctl; the moment it prints its first line (it prints a task id only once RunTask has
 * answered), calls onAnswer with that line, before anything else happens. Resolves when it exits.
 */
function runReadingAtAnswer<T>(args: string[], onAnswer: (line: string) => Promise<T>): Promise<RunResult & { atAnswer: Promise<T> | undefined }> {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN.schedctl, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let atAnswer: Promise<T> | undefined;
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const nl = stdout.indexOf('\n');
      if (atAnswer === undefined && nl >= 0) {
        atAnswer = onAnswer(stdout.slice(0, nl));
        atAnswer.catch(() => undefined); // awaited (and reported) by the caller
      }
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      resolve({ code: code ?? (sig ? 128 : -1), stdout, stderr, atAnswer });
    });
  });
}

describe('e2e: walking skeleton (etcd, manager, two workers, schedctl)', function () {
  this.timeout(120_000);
  let dir: string;
  let etcdStarted: Promise<EtcdHandle> | undefined;
  let sharedStarted: Promise<Cluster> | undefined;
  let clusters = 0;
  /** The shared cluster's daemons, stopped in after(). */
  const daemons: Daemon[] = [];
  /** Daemons of the running test alone, stopped in afterEach(). */
  const own: Daemon[] = [];

  /** The one etcd of this suite, started the first time a test needs it; each cluster has its own prefix in it. */
  const etcd = () => (etcdStarted ??= startEtcd());

  /** Starts a manager on an etcd prefix of its own and `workers` workers, and waits until they are connected. */
  const startCluster = async (name: string, o: { workers: number; into: Daemon[]; pingMs?: number }): Promise<Cluster> => {
    const home = join(dir, `${++clusters}-${name}`);
    mkdirSync(home);
    const prefix = `/sched-e2e/${clusters}-${name}/`;
    const { endpoint } = await etcd();
    const config = [
      `store: {type: etcd, endpoints: ["${endpoint}"], prefix: ${prefix}}`,
      `ping_interval: ${o.pingMs ?? PING_MS}ms`,
      'ack_timeout: 3s',
      'recovery_grace: 1s',
      'log_level: debug',
    ].join('\n');
    const boot = async (port?: number) => {
      const m = await startManager({ config, yamlFile: join(home, 'management-node.yaml'), logFile: join(home, 'manager.log'), ...(port === undefined ? {} : { port }) });
      o.into.push(m.daemon);
      return m;
    };
    const first = await boot();
    const schedctlYaml = writeYaml(join(home, 'schedctl.yaml'), `manager: ${first.address}\ntimeout: 5s\n`);
    const ctl = (...args: string[]) => run(BIN.schedctl, ['-c', schedctlYaml, ...args]);
    const workerRows = async () => {
      const r = await ctl('-o', 'wide', 'workers', 'ls');
      if (r.code !== 0) throw new Error(r.stderr);
      return r.stdout.trim().split('\n').slice(1);
    };
    const connectedCount = async () => (await workerRows()).filter((l) => /\bconnected\b/.test(l)).length;
    const workers: Daemon[] = [];
    for (let i = 0; i < o.workers; i++) {
      const yaml = writeYaml(
        join(home, `worker-${i + 1}.yaml`),
        `manager: ${first.address}\ndata_dir: ${join(home, `worker-${i + 1}`)}\nreconnect_interval: 200ms\nshutdown_timeout: 300ms\nlog_level: debug\n`,
      );
      const w = startDaemon(BIN.worker, ['-f', yaml], join(home, `worker-${i + 1}.log`));
      o.into.push(w);
      workers.push(w);
    }
    await waitFor(`${o.workers} connected workers`, async () => (await connectedCount()) === o.workers);
    const cluster: Cluster = {
      address: first.address,
      prefix,
      schedctlYaml,
      manager: first.daemon,
      workers,
      ctl,
      workerRows,
      connectedCount,
      workerId: (i) => readFileSync(join(home, `worker-${i + 1}`, 'worker-id'), 'utf8').trim(),
      async restartManager() {
        cluster.manager = (await boot(first.port)).daemon;
      },
    };
    return cluster;
  };
  /** The cluster of the tests that only look: two workers, never stopped, killed or restarted before after(). */
  const shared = () => (sharedStarted ??= startCluster('shared', { workers: 2, into: daemons }));

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'sched-e2e-'));
  });

  afterEach(async () => {
    await Promise.all(own.splice(0).map((d) => d.stop()));
  });

  after(async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    await etcdStarted?.then((e) => e.stop(), () => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists workers with ID, ADDRESS and STATE', async () => {
    const c = await shared();
    const r = await c.ctl('-o', 'wide', 'workers', 'ls');
    expect(r.code).to.equal(0);
    const [header, ...rows] = r.stdout.trim().split('\n');
    expect(header).to.match(/ID.*ADDRESS.*STATE/);
    expect(rows).to.have.length(2);
    for (const row of rows) expect(row).to.match(/[0-9a-f-]{36}.*127\.0\.0\.1:\d+.*\bconnected\b/);
    expect(r.stdout).not.to.include('\u001b[');
  });

  it('prints usage for no arguments, help, workers help and tasks help', async () => {
    // Usage needs no manager: the config names an address nobody serves.
    const yaml = writeYaml(join(dir, 'schedctl-usage.yaml'), 'manager: 127.0.0.1:1\ntimeout: 5s\n');
    const schedctl = (...args: string[]) => run(BIN.schedctl, ['-c', yaml, ...args]);
    for (const args of [[], ['help']]) {
      const r = await schedctl(...args);
      expect(r.code, args.join(' ')).to.equal(0);
      expect(r.stdout).to.match(/usage/i);
      expect(r.stdout).to.include('workers');
      expect(r.stdout).to.include('tasks');
    }
    const w = await schedctl('workers', 'help');
    expect(w.stdout + w.stderr).to.include('ls');
    const t = await schedctl('tasks', 'help');
    expect(t.stdout + t.stderr).to.include('run');
  });

  it('runs a task: pending → scheduled → done, stored in etcd before the client hears of it', async () => {
    const c = await shared();
    const { endpoint } = await etcd();
    const client = new Etcd3({ hosts: endpoint });
    try {
      // Connected beforehand, so the read below is the first thing after the answer.
      await client.get(`${c.prefix}no-such-key`).buffer();
      const argv = ['sh', '-c', 'echo out-$((6*7)); echo err >&2'];
      const r = await runReadingAtAnswer(['-c', c.schedctlYaml, 'tasks', 'run', '--', ...argv], (id) => client.get(`${c.prefix}tasks/${id}`).buffer());
      expect(r.code, r.stderr).to.equal(0);
      const id = r.stdout.trim();
      expect(id).to.match(/^[0-9a-f-]{36}$/);
      expect(r.atAnswer, 'etcd read when schedctl printed the id').to.not.equal(undefined);
      const atAnswer = await r.atAnswer;
      expect(atAnswer, 'task key in etcd when schedctl printed the id').to.not.equal(null);
      const first = fromBinary(TaskSchema, atAnswer!);
      expect(first.id).to.equal(id);
      expect(first.spec?.argv).to.deep.equal(argv);
      expect([TaskState.PENDING, TaskState.SCHEDULED, TaskState.DONE], `stored state ${TaskState[first.state]}`).to.include(first.state);

      await waitFor('task done', async () => (await c.ctl('tasks', 'show', id)).stdout.match(/\bdone\b/));
      const show = await c.ctl('tasks', 'show', id);
      expect(show.stdout).to.include('out-42');
      expect(show.stdout).to.match(/exit[^\n]*\b0\b/i);

      const raw = await client.get(`${c.prefix}tasks/${id}`).buffer();
      expect(raw, 'task key in etcd').to.not.equal(null);
      const task = fromBinary(TaskSchema, raw!);
      expect(task.state).to.equal(TaskState.DONE);
      expect(task.exitCode).to.equal(0);
      expect(task.workerId).to.match(/^[0-9a-f-]{36}$/);
      const workerKeys = await client.getAll().prefix(`${c.prefix}workers/`).buffers();
      const states = Object.values(workerKeys).map((b) => fromBinary(WorkerSchema, b).state);
      expect(states).to.deep.equal([WorkerState.CONNECTED, WorkerState.CONNECTED]);

      const ls = await c.ctl('-o', 'wide', 'tasks', 'ls');
      expect(ls.stdout).to.include(id);
    } finally {
      client.close();
    }
  });

  it('tasks run --wait exits with the task exit code', async () => {
    const c = await shared();
    const r = await c.ctl('tasks', 'run', '--wait', '--', 'sh', '-c', 'exit 7');
    expect(r.code, r.stderr).to.equal(7);
    const ok = await c.ctl('tasks', 'run', '--wait', '--', 'true');
    expect(ok.code, ok.stderr).to.equal(0);
  });

  it('tasks run --wait says why a task waits, and exits 125 when no worker could ever fit it', async () => {
    const c = await shared();
    const r = await c.ctl('tasks', 'run', '--wait', '--mem', '100Ti', '--', 'true');
    expect(r.code, r.stderr).to.equal(125);
    const id = r.stdout.trim();
    expect(r.stderr).to.include(`schedctl: task ${id} pending: 0/2 workers fit: 2 insufficient memory; no connected worker could ever fit it`);
    expect(r.stderr).to.include(`cancel it with: schedctl tasks cancel ${id}`);
    // It stays pending (a bigger worker may join) until cancelled.
    const t = JSON.parse((await c.ctl('tasks', 'show', id, '-o', 'json')).stdout) as { state?: string };
    expect(t.state).to.equal('TASK_STATE_PENDING');
    expect((await c.ctl('tasks', 'cancel', id)).code).to.equal(0);
  });

  it('a command that cannot start ends dead (start-failed) with exit 127 and the spawn error', async () => {
    const c = await shared();
    const r = await c.ctl('tasks', 'run', '--wait', '--', '/nonexistent/cmd');
    expect(r.code, r.stderr).to.equal(127);
    const id = r.stdout.trim();
    expect(id).to.match(/^[0-9a-f-]{36}$/);
    const t = JSON.parse((await c.ctl('tasks', 'show', id, '-o', 'json')).stdout) as { state?: string; deadReason?: string; exitCode?: number; error?: string };
    expect({ state: t.state, deadReason: t.deadReason, exitCode: t.exitCode }).to.deep.equal({ state: 'TASK_STATE_DEAD', deadReason: 'start-failed', exitCode: 127 });
    expect(t.error).to.match(/ENOENT/);
  });

  it('rejects bad input with a clear error and loses nothing', async () => {
    const c = await shared();
    // A task of its own, so there is something to lose.
    const mine = await c.ctl('tasks', 'run', '--wait', '--', 'true');
    expect(mine.code, mine.stderr).to.equal(0);
    const before = (await c.ctl('tasks', 'ls', '-o', 'json')).stdout;
    expect(before).to.include(mine.stdout.trim());
    const missing = await c.ctl('tasks', 'show', 'no-such-task');
    expect(missing.code).to.equal(1);
    expect(missing.stderr).to.match(/no-such-task.*not found/);
    const noCmd = await c.ctl('tasks', 'run', '--', '');
    expect(noCmd.code).to.not.equal(0);
    expect(noCmd.stderr).to.match(/argv|command/);
    expect((await c.ctl('tasks', 'ls', '-o', 'json')).stdout).to.equal(before);
  });

  it('a worker killed with -9 shows disconnected at once', async () => {
    // Pings 5 s apart: the missed-ping check cannot notice a silent worker before 3 intervals after
    // the last message heard from it, so disconnected well before that is the connection's end.
    const pingMs = 5000;
    const c = await startCluster('kill9-worker', { workers: 1, into: own, pingMs });
    const id = c.workerId(0);
    await c.workers[0]!.kill9();
    const seenAt = await waitFor(
      'the killed worker disconnected',
      async () => (await c.workerRows()).some((l) => l.startsWith(id) && /disconnected/.test(l)) && Date.now(),
      3 * pingMs,
      50,
    );
    const w = JSON.parse((await c.ctl('workers', 'show', id, '-o', 'json')).stdout) as { lastSeenUnixMs?: string };
    expect(seenAt - Number(w.lastSeenUnixMs), 'ms from the last message heard to disconnected').to.be.lessThan(3 * pingMs);
  });

  it('a worker that stops answering pings shows disconnected after 3 missed pings, then reconnects', async () => {
    // Pings 1 s apart, so disconnecting after fewer missed pings would show.
    const pingMs = 1000;
    const t0 = Date.now();
    const c = await startCluster('sigstop-worker', { workers: 1, into: own, pingMs });
    const id = c.workerId(0);
    const victim = c.workers[0]!;
    victim.signal('SIGSTOP');
    let seenAt: number;
    let lastSeen: number;
    try {
      // When each poll returned: the worker was disconnected by then, never earlier than its answer.
      seenAt = await waitFor(
        'stopped worker disconnected',
        async () => (await c.workerRows()).some((l) => l.startsWith(id) && /disconnected/.test(l)) && Date.now(),
        10 * pingMs,
        50,
      );
      // The last message the manager heard from the worker (read before it can reconnect, which counts as one).
      lastSeen = Number((JSON.parse((await c.ctl('workers', 'show', id, '-o', 'json')).stdout) as { lastSeenUnixMs?: string }).lastSeenUnixMs);
    } finally {
      victim.signal('SIGCONT');
    }
    expect(lastSeen, 'last heard from the worker').to.be.greaterThan(t0);
    // Not before 3 ping intervals of silence: seenAt is no earlier than the disconnect.
    expect(seenAt - lastSeen, 'ms from the last message heard to disconnected').to.be.at.least(3 * pingMs);
    await waitFor('worker reconnected', async () => (await c.connectedCount()) === 1, 15_000);
  });

  it('a manager killed with -9 while a task runs comes back with the same tasks and workers; the task is adopted and ends once', async () => {
    const c = await startCluster('kill9-manager', { workers: 2, into: own });
    const home = join(dir, 'kill9-manager-task');
    mkdirSync(home);
    const started = join(home, 'started');
    const go = join(home, 'go');
    const ended = join(home, 'ended');
    // A finished task, stored before the kill like the running one.
    const finished = await c.ctl('tasks', 'run', '--wait', '--', 'true');
    expect(finished.code, finished.stderr).to.equal(0);
    // The task goes on until the test lets it: it is certainly running when the manager dies.
    const script = `echo "$SCHED_TASK_ATTEMPT" >> ${started}; while [ ! -e ${go} ]; do sleep 0.05; done; echo "$SCHED_TASK_ATTEMPT" >> ${ended}; exit 5`;
    const id = (await c.ctl('tasks', 'run', '--', 'sh', '-c', script)).stdout.trim();
    const show = async () => JSON.parse((await c.ctl('tasks', 'show', id, '-o', 'json')).stdout) as { state?: string; attempt?: number };
    await waitFor('the task to start', () => existsSync(started));
    await waitFor('the task stored as scheduled', async () => (await show()).state === 'TASK_STATE_SCHEDULED');
    const tasksBefore = JSON.parse((await c.ctl('tasks', 'ls', '-o', 'json')).stdout) as unknown;
    const workerIds = (rows: string[]) => new Set(rows.map((l) => l.split(/\s+/)[0]));
    const workersBefore = workerIds(await c.workerRows());
    await c.manager.kill9();
    await c.restartManager();
    await waitFor('both workers reconnected', async () => (await c.connectedCount()) === 2, 20_000);
    const rows = await c.workerRows();
    expect(rows).to.have.length(2);
    expect(workerIds(rows)).to.deep.equal(workersBefore);
    expect(existsSync(ended), 'the task ended before it was let go').to.equal(false);
    writeFileSync(go, '');
    // The task that ran across the restart is reported once it finishes.
    await waitFor('task across restart done', async () => (await show()).state === 'TASK_STATE_DONE', 20_000);
    const after = JSON.parse((await c.ctl('tasks', 'ls', '-o', 'json')).stdout) as unknown;
    const ids = (x: unknown) => JSON.stringify(x).match(/[0-9a-f]{8}-[0-9a-f-]{27}/g)?.sort() ?? [];
    expect(new Set(ids(tasksBefore))).to.include(finished.stdout.trim()).and.to.include(id);
    expect(new Set(ids(after))).to.deep.equal(new Set(ids(tasksBefore)));
    expect((await c.ctl('tasks', 'show', id)).stdout).to.match(/exit[^\n]*\b5\b/i);
    // Adopted, not run again: one start and one end, of the attempt the store keeps.
    const lines = (file: string) => readFileSync(file, 'utf8').trim().split('\n');
    const attempt = String((await show()).attempt ?? 0);
    expect(lines(started), 'start lines').to.deep.equal([attempt]);
    expect(lines(ended), 'end lines').to.deep.equal([attempt]);
  });

  it('a worker stopped with SIGTERM says goodbye: disconnected at once, a task still running past shutdown_timeout dead (worker-lost)', async () => {
    const c = await startCluster('sigterm-worker', { workers: 1, into: own });
    const workerId = c.workerId(0);
    const id = (await c.ctl('tasks', 'run', '--', 'sleep', '30')).stdout.trim();
    await waitFor('task scheduled', async () => {
      const t = JSON.parse((await c.ctl('tasks', 'show', id, '-o', 'json')).stdout) as { state?: string; workerId?: string };
      return t.state === 'TASK_STATE_SCHEDULED' && t.workerId === workerId;
    });
    c.workers[0]!.signal('SIGTERM');
    expect(await c.workers[0]!.exited).to.equal(0);
    const show = await c.ctl('tasks', 'show', id);
    expect(show.stdout).to.match(/\bdead\b/);
    expect(show.stdout).to.include('worker-lost');
    expect((await c.workerRows()).some((l) => l.startsWith(workerId) && /disconnected/.test(l))).to.equal(true);
  });

  it('no answer within the ack timeout: the offer is withdrawn, and the task is dead once the silent worker is gone past its grace', async () => {
    const home = join(dir, 'ack');
    mkdirSync(home);
    const m = await startManager({
      config: `store: {type: embedded, path: ${join(home, 'store')}}\nping_interval: 2s\nack_timeout: 300ms\nreconnect_grace: 1s\n`,
      yamlFile: join(home, 'management-node.yaml'),
      logFile: join(home, 'manager.log'),
    });
    own.push(m.daemon);
    const wy = writeYaml(join(home, 'worker.yaml'), `manager: ${m.address}\ndata_dir: ${join(home, 'worker')}\n`);
    const w = startDaemon(BIN.worker, ['-f', wy], join(home, 'worker.log'));
    own.push(w);
    const ctl = (...args: string[]) => run(BIN.schedctl, ['--manager', m.address, ...args]);
    await waitFor('ack worker connected', async () => (await ctl('workers', 'ls')).stdout.match(/\bconnected\b/));
    w.signal('SIGSTOP');
    try {
      const r = await ctl('tasks', 'run', '--wait', '--', 'true');
      expect(r.code).to.equal(125);
      expect(r.stderr).to.match(/dead.*ack-timeout/);
    } finally {
      w.signal('SIGCONT');
    }
  });
});

describe('e2e: daemon configuration errors', function () {
  this.timeout(30_000);
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'sched-cfg-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  const cases: Array<[string, string, RegExp]> = [
    ['bad YAML', 'listen: [\n', /invalid YAML/],
    ['unknown key', 'listen: 127.0.0.1:1\nlisten_adress: x\n', /unknown key listen_adress/],
    ['wrong type', 'ping_interval: [1]\n', /ping_interval/],
    ['bad store', 'store: {type: etcd, endpoints: "http://x"}\n', /store\.endpoints/],
  ];
  for (const [name, text, pattern] of cases) {
    it(`management-node: ${name} → one line naming file and key, exit 2`, async () => {
      const file = writeYaml(join(dir, `${name.replace(/ /g, '-')}.yaml`), text);
      const r = await run(BIN.manager, ['-f', file]);
      expect(r.code).to.equal(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines).to.have.length(1);
      expect(lines[0]).to.include(file);
      expect(lines[0]).to.match(pattern);
    });
  }

  it('management-node: missing file → exit 2', async () => {
    const r = await run(BIN.manager, ['-f', join(dir, 'nope.yaml')]);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.match(/nope\.yaml.*no such file/);
  });

  it('worker-node and schedctl report config errors the same way', async () => {
    const bad = writeYaml(join(dir, 'w.yaml'), 'manager: 127.0.0.1:1\nlabelz: {}\n');
    const w = await run(BIN.worker, ['-f', bad]);
    expect(w.code).to.equal(2);
    expect(w.stderr).to.match(/w\.yaml.*labelz/);
    const c = await run(BIN.schedctl, ['-c', bad, 'workers', 'ls']);
    expect(c.code).to.equal(2);
    expect(c.stderr).to.match(/w\.yaml/);
  });

  it('management-node: unreachable etcd is reported and retried, never a stack trace', async () => {
    // Nothing listens on the etcd port; the manager binds port 0 (it never gets as far as serving).
    const [dead] = (await freePorts(1)) as [number];
    const file = writeYaml(
      join(dir, 'dead-etcd.yaml'),
      `listen: 127.0.0.1:0\nstore: {type: etcd, endpoints: ["http://127.0.0.1:${dead}"], dial_timeout: 300ms}\n`,
    );
    const m = startDaemon(BIN.manager, ['-f', file], join(dir, 'dead-etcd.log'));
    try {
      await waitFor('two retry lines', () => (m.log().match(/retrying/g)?.length ?? 0) >= 2, 15_000);
      expect(m.log()).to.include(`127.0.0.1:${dead}`);
      expect(m.log()).to.not.match(/\n\s+at /);
    } finally {
      await m.stop();
    }
  });
});
