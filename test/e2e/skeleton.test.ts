// The walking skeleton end to end: a real etcd, the built management node and
// two built workers as child processes, driven only through the built schedctl.
import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { fromBinary } from '@bufbuild/protobuf';
import { TaskSchema, TaskState, WorkerSchema, WorkerState } from '../../proto/gen/sched/v1/types_pb.js';
import { startEtcd, freePorts, type EtcdHandle } from '../support/etcd.js';
import { BIN, run, startDaemon, waitFor, writeYaml, type Daemon } from '../support/processes.js';

const PING_MS = 250;

describe('e2e: walking skeleton (etcd, manager, two workers, schedctl)', function () {
  this.timeout(120_000);
  let etcd: EtcdHandle;
  let dir: string;
  let port: number;
  let managerYaml: string;
  let schedctlYaml: string;
  let manager: Daemon;
  const workers: Daemon[] = [];
  const daemons: Daemon[] = [];
  const prefix = '/sched-e2e/';

  const schedctl = (...args: string[]) => run(BIN.schedctl, ['-c', schedctlYaml, ...args]);
  const startManager = (yaml = managerYaml) => {
    const d = startDaemon(BIN.manager, ['-f', yaml], join(dir, 'manager.log'));
    daemons.push(d);
    return d;
  };
  const startWorker = (n: number) => {
    const yaml = writeYaml(
      join(dir, `worker-${n}.yaml`),
      `manager: 127.0.0.1:${port}\ndata_dir: ${join(dir, `worker-${n}`)}\nreconnect_interval: 200ms\nshutdown_timeout: 300ms\nlog_level: debug\n`,
    );
    const d = startDaemon(BIN.worker, ['-f', yaml], join(dir, `worker-${n}.log`));
    daemons.push(d);
    return d;
  };
  const workerRows = async () => {
    const r = await schedctl('workers', 'ls');
    if (r.code !== 0) throw new Error(r.stderr);
    return r.stdout.trim().split('\n').slice(1);
  };
  const connectedCount = async () => (await workerRows()).filter((l) => /\bconnected\b/.test(l)).length;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sched-e2e-'));
    etcd = await startEtcd();
    [port] = (await freePorts(1)) as [number];
    managerYaml = writeYaml(
      join(dir, 'management-node.yaml'),
      [
        `listen: 127.0.0.1:${port}`,
        `store: {type: etcd, endpoints: ["${etcd.endpoint}"], prefix: ${prefix}}`,
        `ping_interval: ${PING_MS}ms`,
        'ack_timeout: 3s',
        'recovery_grace: 1s',
        'log_level: debug',
      ].join('\n'),
    );
    schedctlYaml = writeYaml(join(dir, 'schedctl.yaml'), `manager: 127.0.0.1:${port}\ntimeout: 5s\n`);
    manager = startManager();
    workers.push(startWorker(1), startWorker(2));
    await waitFor('two connected workers', async () => (await connectedCount()) === 2);
  });

  after(async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    await etcd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists workers with ID, ADDRESS and STATE', async () => {
    const r = await schedctl('workers', 'ls');
    expect(r.code).to.equal(0);
    const [header, ...rows] = r.stdout.trim().split('\n');
    expect(header).to.match(/ID.*ADDRESS.*STATE/);
    expect(rows).to.have.length(2);
    for (const row of rows) expect(row).to.match(/[0-9a-f-]{36}.*127\.0\.0\.1:\d+.*\bconnected\b/);
    expect(r.stdout).not.to.include('\u001b[');
  });

  it('prints usage for no arguments, help, workers help and tasks help', async () => {
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
    const r = await schedctl('tasks', 'run', '--', 'sh', '-c', 'echo out-$((6*7)); echo err >&2');
    expect(r.code, r.stderr).to.equal(0);
    const id = r.stdout.trim();
    expect(id).to.match(/^[0-9a-f-]{36}$/);
    await waitFor('task done', async () => (await schedctl('tasks', 'show', id)).stdout.match(/\bdone\b/));
    const show = await schedctl('tasks', 'show', id);
    expect(show.stdout).to.include('out-42');
    expect(show.stdout).to.match(/exit[^\n]*\b0\b/i);

    const client = new Etcd3({ hosts: etcd.endpoint });
    try {
      const raw = await client.get(`${prefix}tasks/${id}`).buffer();
      expect(raw, 'task key in etcd').to.not.equal(null);
      const task = fromBinary(TaskSchema, raw!);
      expect(task.state).to.equal(TaskState.DONE);
      expect(task.exitCode).to.equal(0);
      expect(task.workerId).to.match(/^[0-9a-f-]{36}$/);
      const workerKeys = await client.getAll().prefix(`${prefix}workers/`).buffers();
      const states = Object.values(workerKeys).map((b) => fromBinary(WorkerSchema, b).state);
      expect(states).to.deep.equal([WorkerState.CONNECTED, WorkerState.CONNECTED]);
    } finally {
      client.close();
    }

    const ls = await schedctl('tasks', 'ls');
    expect(ls.stdout).to.include(id);
  });

  it('tasks run --wait exits with the task exit code', async () => {
    const r = await schedctl('tasks', 'run', '--wait', '--', 'sh', '-c', 'exit 7');
    expect(r.code, r.stderr).to.equal(7);
    const ok = await schedctl('tasks', 'run', '--wait', '--', 'true');
    expect(ok.code, ok.stderr).to.equal(0);
  });

  it('a command that cannot start ends done with the spawn error', async () => {
    const r = await schedctl('tasks', 'run', '--wait', '--', '/nonexistent/cmd');
    expect(r.code).to.equal(127);
  });

  it('rejects bad input with a clear error and loses nothing', async () => {
    const before = (await schedctl('tasks', 'ls', '-o', 'json')).stdout;
    const missing = await schedctl('tasks', 'show', 'no-such-task');
    expect(missing.code).to.equal(1);
    expect(missing.stderr).to.match(/no-such-task.*not found/);
    const noCmd = await schedctl('tasks', 'run', '--', '');
    expect(noCmd.code).to.not.equal(0);
    expect(noCmd.stderr).to.match(/argv|command/);
    expect((await schedctl('tasks', 'ls', '-o', 'json')).stdout).to.equal(before);
  });

  it('a worker killed with -9 shows disconnected at once', async () => {
    const victim = workers[1]!;
    const t0 = Date.now();
    await victim.kill9();
    await waitFor('one worker disconnected', async () => (await workerRows()).some((l) => /disconnected/.test(l)), 5000, 50);
    // "At once": well before the missed-ping window (3 × ping interval) could have noticed.
    expect(Date.now() - t0).to.be.lessThan(3 * PING_MS + 1500);
    workers[1] = startWorker(2);
    await waitFor('worker 2 back', async () => (await connectedCount()) === 2);
  });

  it('a worker that stops answering pings shows disconnected after 3 missed pings, then reconnects', async () => {
    const victim = workers[0]!;
    victim.signal('SIGSTOP');
    try {
      await waitFor('stopped worker disconnected', async () => (await workerRows()).some((l) => /disconnected/.test(l)), 10_000, 50);
    } finally {
      victim.signal('SIGCONT');
    }
    await waitFor('worker reconnected', async () => (await connectedCount()) === 2, 15_000);
  });

  it('a manager killed with -9 while a task runs comes back with the same tasks and workers; the task is adopted and ends once', async () => {
    const started = join(dir, 'across-started');
    const go = join(dir, 'across-go');
    const ended = join(dir, 'across-ended');
    // The task goes on until the test lets it: it is certainly running when the manager dies.
    const script = `echo "$SCHED_TASK_ATTEMPT" >> ${started}; while [ ! -e ${go} ]; do sleep 0.05; done; echo "$SCHED_TASK_ATTEMPT" >> ${ended}; exit 5`;
    const id = (await schedctl('tasks', 'run', '--', 'sh', '-c', script)).stdout.trim();
    const show = async () => JSON.parse((await schedctl('tasks', 'show', id, '-o', 'json')).stdout) as { state?: string; attempt?: number };
    await waitFor('the task to start', () => existsSync(started));
    await waitFor('the task stored as scheduled', async () => (await show()).state === 'TASK_STATE_SCHEDULED');
    const tasksBefore = JSON.parse((await schedctl('tasks', 'ls', '-o', 'json')).stdout) as unknown;
    await manager.kill9();
    manager = startManager();
    await waitFor('both workers reconnected', async () => (await connectedCount()) === 2, 20_000);
    const rows = await workerRows();
    expect(rows).to.have.length(2);
    expect(existsSync(ended), 'the task ended before it was let go').to.equal(false);
    writeFileSync(go, '');
    // The task that ran across the restart is reported once it finishes.
    await waitFor('task across restart done', async () => (await show()).state === 'TASK_STATE_DONE', 20_000);
    const after = JSON.parse((await schedctl('tasks', 'ls', '-o', 'json')).stdout) as { tasks?: Array<{ id: string }> } | Array<{ id: string }>;
    const ids = (x: unknown) => JSON.stringify(x).match(/[0-9a-f]{8}-[0-9a-f-]{27}/g)?.sort() ?? [];
    expect(new Set(ids(after))).to.deep.equal(new Set(ids(tasksBefore)));
    expect((await schedctl('tasks', 'show', id)).stdout).to.match(/exit[^\n]*\b5\b/i);
    // Adopted, not run again: one start and one end, of the attempt the store keeps.
    const lines = (file: string) => readFileSync(file, 'utf8').trim().split('\n');
    const attempt = String((await show()).attempt ?? 0);
    expect(lines(started), 'start lines').to.deep.equal([attempt]);
    expect(lines(ended), 'end lines').to.deep.equal([attempt]);
  });

  it('a worker stopped with SIGTERM says goodbye: disconnected at once, a task still running past shutdown_timeout dead (worker-lost)', async () => {
    const id = (await schedctl('tasks', 'run', '--', 'sleep', '30')).stdout.trim();
    const workerId = await waitFor('task scheduled', async () => {
      const out = (await schedctl('tasks', 'show', id, '-o', 'json')).stdout;
      const t = JSON.parse(out) as { state?: string; workerId?: string };
      return t.state === 'TASK_STATE_SCHEDULED' && t.workerId;
    });
    const index = workers.findIndex((_, i) => readFileSync(join(dir, `worker-${i + 1}`, 'worker-id'), 'utf8').trim() === workerId);
    expect(index, `worker ${workerId}`).to.be.at.least(0);
    workers[index]!.signal('SIGTERM');
    expect(await workers[index]!.exited).to.equal(0);
    const show = await schedctl('tasks', 'show', id);
    expect(show.stdout).to.match(/\bdead\b/);
    expect(show.stdout).to.include('worker-lost');
    expect((await workerRows()).some((l) => l.startsWith(workerId) && /disconnected/.test(l))).to.equal(true);
    workers[index] = startWorker(index + 1);
    await waitFor('worker back', async () => (await connectedCount()) === 2);
  });

  it('no answer within the ack timeout: the offer is withdrawn, and the task is dead once the silent worker is gone past its grace', async () => {
    const [p2] = (await freePorts(1)) as [number];
    const yaml = writeYaml(
      join(dir, 'ack.yaml'),
      `listen: 127.0.0.1:${p2}\nstore: {type: embedded, path: ${join(dir, 'ack-store')}}\nping_interval: 2s\nack_timeout: 300ms\nreconnect_grace: 1s\n`,
    );
    const m = startDaemon(BIN.manager, ['-f', yaml], join(dir, 'ack-manager.log'));
    daemons.push(m);
    const wy = writeYaml(join(dir, 'ack-worker.yaml'), `manager: 127.0.0.1:${p2}\ndata_dir: ${join(dir, 'ack-worker')}\n`);
    const w = startDaemon(BIN.worker, ['-f', wy], join(dir, 'ack-worker.log'));
    daemons.push(w);
    const ctl = (...args: string[]) => run(BIN.schedctl, ['--manager', `127.0.0.1:${p2}`, ...args]);
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
    const [dead, listen] = (await freePorts(2)) as [number, number];
    const file = writeYaml(
      join(dir, 'dead-etcd.yaml'),
      `listen: 127.0.0.1:${listen}\nstore: {type: etcd, endpoints: ["http://127.0.0.1:${dead}"], dial_timeout: 300ms}\n`,
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
