// Schedules with the built binaries on the embedded store: schedctl's verbs, and an
// every-second schedule across kill -9 of the manager: each time slot makes at most
// one task (its slot and its idempotency key are unique among the schedule's tasks),
// and each task ran once (every run appends its task id to one file).
import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { createServiceClient } from '../../common/grpc-service.js';
import { createManagerClient } from '../../common/manager-client.js';
import { ManagementService } from '../../proto/gen/schedapi/v1/management_pb.js';
import { TaskState } from '../../proto/gen/schedapi/v1/types_pb.js';
import { isFinal, listAll, type Client } from '../support/exactly-once.js';
import { startEtcd, type EtcdHandle } from '../support/etcd.js';
import { BIN, run, startDaemon, startManager, startWorker, waitFor, writeYaml, type Daemon } from '../support/processes.js';

const lines = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);

/**
 * Once every run of the schedule has ended: one task per slot (slots and idempotency keys
 * unique), each done with exit 0, and each ran once (its id once in the file its runs append to).
 */
async function expectOneTaskPerSlotRunOnce(client: Client, name: string, ran: string): Promise<void> {
  const tasks = await waitFor(`every run of ${name} ended`, async () => {
    const ts = (await listAll(client)).filter((t) => t.schedule === name);
    return ts.every(isFinal) && ts;
  }, 30_000);

  const slots = tasks.map((t) => Number(t.scheduledForUnixMs));
  expect(new Set(slots).size, 'one task per slot').to.equal(tasks.length);
  expect(slots.every((s) => s % 1000 === 0), 'slots are whole seconds').to.equal(true);
  expect(tasks.map((t) => t.idempotencyKey)).to.deep.equal(slots.map((s) => `schedule:${name}:${s}`));
  expect(tasks.filter((t) => t.state !== TaskState.DONE || t.exitCode !== 0).map((t) => t.id), 'every run succeeded').to.deep.equal([]);
  const runs = lines(ran);
  expect(runs.length, 'each task ran once').to.equal(new Set(runs).size);
  expect([...runs].sort()).to.deep.equal(tasks.map((t) => t.id).sort());
  // The record names each slot once too.
  const { schedule } = await client.getSchedule({ name }, {});
  const recorded = schedule!.runs.map((r) => Number(r.slotUnixMs));
  expect(new Set(recorded).size).to.equal(recorded.length);
}

describe('e2e: schedules (embedded store)', function () {
  this.timeout(120_000);
  let dir: string;
  let port: number | undefined;
  let manager: Daemon;
  let worker: Daemon;
  let client: Client;
  const ctl = (...args: string[]) => run(BIN.schedctl, ['--manager', `127.0.0.1:${port}`, ...args]);
  const bootManager = async () => {
    const m = await startManager({
      config: `store: {type: embedded, path: ${join(dir, 'store')}}\nping_interval: 300ms\nrecovery_grace: 2s\nreconnect_grace: 4s\n`,
      yamlFile: join(dir, 'manager.yaml'),
      logFile: join(dir, 'manager.log'),
      ...(port === undefined ? {} : { port }),
    });
    manager = m.daemon;
    port = m.port;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sched-schedules-'));
    await bootManager();
    worker = await startWorker(`127.0.0.1:${port}`, dir);
    client = createServiceClient(ManagementService, `127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.max_reconnect_backoff_ms': 500 });
  });
  after(async () => {
    client?.close();
    await worker?.stop();
    await manager?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('schedctl creates, lists, shows, triggers, pauses, resumes and removes a schedule; a bad one is refused with the reason', async () => {
    const bad = await ctl('schedules', 'create', 'nightly', '--cron', '61 3 * * *', '--', 'true');
    expect(bad.code).to.equal(1);
    expect(bad.stderr).to.contain('Invalid value for minute: 61');
    const badZone = await ctl('schedules', 'create', 'nightly', '--cron', '0 3 * * *', '--time-zone', 'Mars/Base', '--', 'true');
    expect(badZone.stderr).to.contain('not an IANA time zone');

    const made = await ctl('schedules', 'create', 'nightly', '--cron', '30 2 * * *', '--time-zone', 'Europe/Berlin', '--overlap', 'replace', '-e', 'A=1', '--timeout', '1m', '--', '/bin/echo', 'hi');
    expect(made.code, made.stderr).to.equal(0);
    expect(made.stdout).to.match(/^NAME\s+CRON/).and.match(/nightly\s+30 2 \* \* \*\s+Europe\/Berlin\s+replace\s+active/);
    const ls = await ctl('-o', 'name', 'schedules', 'ls');
    expect(ls.stdout).to.equal('nightly\n');

    const trig = await ctl('schedules', 'trigger', 'nightly');
    expect(trig.code, trig.stderr).to.equal(0);
    const taskId = trig.stdout.trim();
    await waitFor('the triggered task is done', async () => (await client.getTask({ id: taskId }, { deadlineMs: 2000 })).task?.state === TaskState.DONE);
    const task = (await client.getTask({ id: taskId }, {})).task!;
    expect([task.schedule, task.spec?.argv, task.spec?.env, task.spec?.timeoutMs]).to.deep.equal(['nightly', ['/bin/echo', 'hi'], { A: '1' }, 60_000]);
    const shown = await ctl('tasks', 'show', taskId);
    expect(shown.stdout).to.match(/Schedule:\s+nightly \(the run for /);
    // tasks ls --schedule lists its runs (and only them).
    await ctl('tasks', 'run', '--', 'true');
    expect((await ctl('-o', 'name', 'tasks', 'ls', '--schedule', 'nightly')).stdout).to.equal(`${taskId}\n`);

    const show = await ctl('schedules', 'show', 'nightly');
    expect(show.stdout).to.match(/Next runs/).and.contain(`triggered  ${taskId}  done (succeeded)`);
    expect((await ctl('schedules', 'pause', 'nightly')).stdout).to.match(/nightly.*paused/);
    expect((await ctl('-o', 'json', 'schedules', 'show', 'nightly')).stdout).to.contain('"paused": true');
    expect((await ctl('schedules', 'resume', 'nightly')).stdout).to.match(/nightly.*active/);
    expect((await ctl('schedules', 'rm', 'nightly')).code).to.equal(0);
    const gone = await ctl('schedules', 'show', 'nightly');
    expect([gone.code, gone.stderr]).to.satisfy(([code, err]: [number, string]) => code === 1 && err.includes('not found'));
  });

  it('an every-second schedule across two kill -9 of the manager: no slot makes two tasks, and each task ran once', async () => {
    const ran = join(dir, 'ran.txt');
    const made = await ctl('schedules', 'create', 'tick', '--cron', '* * * * * *', '--overlap', 'allow', '--starting-deadline', '10s', '--cpu', '10m', '--mem', '1Mi', '--shell', '--', `echo "$SCHED_TASK_ID" >> ${ran}`);
    expect(made.code, made.stderr).to.equal(0);
    for (let crash = 0; crash < 2; crash++) {
      const before = lines(ran).length;
      await waitFor('three more runs', () => lines(ran).length >= before + 3, 30_000);
      await manager.kill9();
      await bootManager();
    }
    const before = lines(ran).length;
    await waitFor('three runs after the last restart', () => lines(ran).length >= before + 3, 30_000);
    expect((await ctl('schedules', 'pause', 'tick')).code).to.equal(0);
    await expectOneTaskPerSlotRunOnce(client, 'tick', ran);
  });
});

describe('e2e: schedules across a failover (two managers on etcd)', function () {
  this.timeout(180_000);
  let dir: string;
  let etcd: EtcdHandle;
  const daemons: Daemon[] = [];
  let client: Client;
  const managers: Array<{ n: number; daemon: Daemon; address: string }> = [];

  /** Starts manager n (again, on its port, as a supervisor would); resolves once it listens. */
  const startNth = async (n: number, port = 0) => {
    const config = `store: {type: etcd, endpoints: ["${etcd.endpoint}"], prefix: /schedules/, dial_timeout: 1s}\nleader_lease: 2s\nping_interval: 500ms\nrecovery_grace: 3s\nlog_level: info\n`;
    const m = await startManager({ config, yamlFile: join(dir, `m${n}.yaml`), logFile: join(dir, `m${n}-${daemons.length}.log`), port, until: 'listening' });
    daemons.push(m.daemon);
    managers[n] = { n, daemon: m.daemon, address: m.address };
  };
  const leader = () =>
    waitFor('a leader', () => managers.find((m) => m.daemon.child.exitCode === null && m.daemon.child.signalCode === null && /"msg":"management node ready"/.test(m.daemon.log())), 30_000);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sched-schedules-ha-'));
    if (process.env.KEEP_DIR) console.log(dir);
    etcd = await startEtcd();
    await startNth(0);
    await startNth(1);
    const addresses = managers.map((m) => m.address);
    client = createManagerClient(ManagementService, addresses, grpc.credentials.createInsecure(), {
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 500,
    }) as unknown as Client;
    const yaml = writeYaml(join(dir, 'worker.yaml'), `managers: [${addresses.join(', ')}]\ndata_dir: ${join(dir, 'worker')}\nreconnect_interval: 100ms\nreconnect_max: 1s\nlog_level: info\n`);
    daemons.push(startDaemon(BIN.worker, ['-f', yaml], join(dir, 'worker.log')));
    await waitFor('the worker connected', async () => (await client.listWorkers({}, { deadlineMs: 2000 }).catch(() => ({ workers: [] }))).workers.length === 1);
  });
  after(async () => {
    client?.close();
    await Promise.all(daemons.map((d) => d.stop()));
    await etcd?.stop();
    if (!process.env.KEEP_DIR) rmSync(dir, { recursive: true, force: true });
  });

  it('kill -9 of the leader, twice: the new leader makes no second task for any slot, and each ran once', async () => {
    const ran = join(dir, 'ran.txt');
    await client.createSchedule(
      { schedule: { name: 'tick', cron: '* * * * * *', overlap: 'allow', startingDeadlineMs: 10_000, history: 100, spec: { argv: ['/bin/sh', '-c', `echo "$SCHED_TASK_ID" >> ${ran}`], resources: { millicpu: 10n, memoryBytes: 1n << 20n } } } },
      { deadlineMs: 10_000 },
    );
    for (let crash = 0; crash < 2; crash++) {
      const before = lines(ran).length;
      await waitFor('three more runs', () => lines(ran).length >= before + 3, 60_000);
      const old = await leader();
      await old.daemon.kill9();
      // The other takes over once the lease ends; then the killed one comes back, as a follower
      // (sooner, it would take over its previous run's lease at once: no failover).
      await leader();
      await startNth(old.n, Number(old.address.split(':')[1]));
    }
    const before = lines(ran).length;
    await waitFor('three runs after the last failover', () => lines(ran).length >= before + 3, 60_000);
    await client.pauseSchedule({ name: 'tick', pause: true }, { deadlineMs: 10_000 });
    await expectOneTaskPerSlotRunOnce(client, 'tick', ran);
    // No manager led for over a second each time (until the lease ran out): slots were missed,
    // and at most the latest of each failover was made up (none when the new leader's first
    // slot came at once), the others recorded missed.
    const { schedule } = await client.getSchedule({ name: 'tick' }, {});
    const outcomes = schedule!.runs.map((r) => r.outcome);
    expect(outcomes.filter((o) => o === 'caught-up').length).to.be.at.most(2);
    expect(outcomes.filter((o) => o === 'caught-up' || o === 'missed').length).to.be.at.least(2);
    expect(outcomes.filter((o) => !['ran', 'caught-up', 'missed'].includes(o))).to.deep.equal([]);
  });

  it('overlap skip holds across a failover: a run still going on the worker is not joined by another (Nomad #11052)', async () => {
    const marks = join(dir, 'slow.txt');
    await client.createSchedule(
      {
        schedule: {
          name: 'slow',
          cron: '* * * * * *',
          overlap: 'skip',
          startingDeadlineMs: 10_000,
          history: 100,
          spec: {
            argv: ['/bin/sh', '-c', `echo "start $SCHED_TASK_ID $(date +%s%N)" >> ${marks}; sleep 2.5; echo "end $SCHED_TASK_ID $(date +%s%N)" >> ${marks}`],
            resources: { millicpu: 10n, memoryBytes: 1n << 20n },
          },
        },
      },
      { deadlineMs: 10_000 },
    );
    const started = () => lines(marks).filter((l) => l.startsWith('start ')).length;
    const running = () => started() > lines(marks).filter((l) => l.startsWith('end ')).length;
    for (let crash = 0; crash < 2; crash++) {
      const before = started();
      // Killed while a run is going on: the new leader must see it and skip the slots meanwhile.
      await waitFor('a new run going on', () => started() > before && running(), 60_000);
      const old = await leader();
      await old.daemon.kill9();
      await leader();
      await startNth(old.n, Number(old.address.split(':')[1]));
    }
    const before = started();
    await waitFor('a run after the last failover', () => started() > before, 60_000);
    await client.pauseSchedule({ name: 'slow', pause: true }, { deadlineMs: 10_000 });
    await waitFor('every run ended', async () => {
      const ts = (await listAll(client)).filter((t) => t.schedule === 'slow');
      return ts.every(isFinal) && !running();
    }, 30_000);
    // The runs, in the order they started: none starts before the one before it ended.
    const at = new Map<string, { start: bigint; end?: bigint }>();
    for (const l of lines(marks)) {
      const [kind, id, ns] = l.split(' ') as [string, string, string];
      const r = at.get(id) ?? { start: 0n };
      if (kind === 'start') r.start = BigInt(ns);
      else r.end = BigInt(ns);
      at.set(id, r);
    }
    const runs = [...at.values()].sort((a, b) => (a.start < b.start ? -1 : 1));
    expect(runs.length).to.be.at.least(3);
    for (let i = 1; i < runs.length; i++) {
      expect(runs[i]!.start > runs[i - 1]!.end!, `run ${i} started before run ${i - 1} ended`).to.equal(true);
    }
  });
});
