// RunTask idempotency keys against the built manager (embedded store) and a
// worker: fifty clients on fifty connections send one key at the same moment;
// exactly one task (or one group) exists afterwards, every client is answered
// with it, and it runs once. The key also survives a kill -9 of the manager,
// and schedctl --idempotency-key reruns print the same ids.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { createServiceClient } from '../../common/grpc-service.js';
import { ManagementService, type RunTaskResponse } from '../../proto/gen/schedapi/v1/management_pb.js';
import { TaskState, WorkerState, type Task } from '../../proto/gen/schedapi/v1/types_pb.js';
import { isFinal, jobArgv, listAll, readLedger, type Client } from '../support/exactly-once.js';
import { BIN, run, startDaemon, startManager, waitFor, writeYaml, type Daemon } from '../support/processes.js';

const CLIENTS = 50;

describe('e2e: one idempotency key, many concurrent RunTasks (embedded store)', function () {
  this.timeout(90_000);
  let dir: string;
  /** The manager's port: the kernel's pick at its first start, and the same port when it is restarted (the clients dial it). */
  let port: number | undefined;
  let ledger: string;
  let managerConfig: string;
  let manager: Daemon;
  const daemons: Daemon[] = [];
  const clients: Client[] = [];

  /** Starts the manager and resolves once it is ready. */
  const bootManager = async () => {
    const m = await startManager({ config: managerConfig, yamlFile: join(dir, 'manager.yaml'), logFile: join(dir, 'manager.log'), ...(port === undefined ? {} : { port }) });
    manager = m.daemon;
    daemons.push(manager);
    port = m.port;
  };
  const client = () => clients[0]!;
  const spec = (job: string) => ({ argv: jobArgv(ledger), env: { JOB: job, SLEEP: '0' }, resources: { millicpu: 10n, memoryBytes: 1n << 20n } });

  /** Every client on its own connection, all connected, then one RunTask each at the same moment. */
  const race = async (key: string, job: string, count: number): Promise<RunTaskResponse[]> => {
    const deadline = Date.now() + 10_000;
    await Promise.all(clients.map((c) => new Promise<void>((resolve, reject) => c.raw.waitForReady(deadline, (err) => (err ? reject(err) : resolve())))));
    return Promise.all(clients.map((c) => c.runTask({ spec: spec(job), count, idempotencyKey: key }, { deadlineMs: 20_000 })));
  };
  /** The stored tasks of one job, once all of them are final and the worker runs nothing. */
  const settle = (job: string) =>
    waitFor(`job ${job} finished and the worker idle`, async () => {
      const tasks = (await listAll(client())).filter((t) => t.spec?.env.JOB === job);
      const { workers } = await client().listWorkers({}, { deadlineMs: 2000 });
      return tasks.length > 0 && tasks.every(isFinal) && workers.every((w) => w.runningTasks === 0) && tasks;
    }, 30_000, 100);
  const ends = (job: string) => readLedger(ledger).ends.get(job) ?? [];
  const ids = (res: RunTaskResponse): string[] => (res.tasks.length > 0 ? res.tasks : [res.task!]).map((t) => t.id);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sched-idem-'));
    ledger = join(dir, 'ledger.txt');
    managerConfig = `store: {type: embedded, path: ${join(dir, 'store')}}\nping_interval: 500ms\nrecovery_grace: 5s\n`;
    await bootManager();
    const wy = writeYaml(
      join(dir, 'worker.yaml'),
      `manager: 127.0.0.1:${port}\ndata_dir: ${join(dir, 'worker')}\nreconnect_interval: 100ms\nreconnect_max: 500ms\ncapacity: {cpu: 4, memory: 4Gi}\n`,
    );
    daemons.push(startDaemon(BIN.worker, ['-f', wy], join(dir, 'worker.log')));
    // Distinct channel arguments keep grpc-js from sharing one connection among the clients.
    for (let i = 0; i < CLIENTS; i++) {
      clients.push(createServiceClient(ManagementService, `127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'sched.test.client': i, 'grpc.use_local_subchannel_pool': 1, 'grpc.max_reconnect_backoff_ms': 500 }));
    }
    await waitFor('the worker connected', async () => (await client().listWorkers({}, { deadlineMs: 2000 })).workers.some((w) => w.state === WorkerState.CONNECTED));
  });

  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(daemons.map((d) => d.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it(`${CLIENTS} concurrent RunTasks with one key: one task, the same answer for all, one run`, async () => {
    const key = `race-one-${Date.now()}`;
    const answers = await race(key, 'one', 1);
    const first = answers[0]!.task!;
    expect(new Set(answers.map((a) => a.task?.id)), 'task ids answered').to.deep.equal(new Set([first.id]));
    for (const a of answers) expect(a.tasks.length, 'tasks of a count-1 answer').to.be.at.most(1);
    expect(first.idempotencyKey).to.equal(key);
    const tasks = await settle('one');
    expect(tasks.map((t) => t.id)).to.deep.equal([first.id]);
    expect(tasks[0]!.state).to.equal(TaskState.DONE);
    expect(tasks[0]!.idempotencyKey).to.equal(key);
    expect(ends('one').map((e) => e.task)).to.deep.equal([first.id]);
  });

  it(`${CLIENTS} concurrent RunTasks with one key and count 20: one group of 20, the same ids for all, each run once`, async () => {
    const key = `race-group-${Date.now()}`;
    const answers = await race(key, 'group', 20);
    const want = ids(answers[0]!);
    expect(want).to.have.length(20);
    expect(new Set(want).size).to.equal(20);
    const groupId = answers[0]!.groupId;
    expect(groupId).to.not.equal('');
    for (const a of answers) {
      expect(ids(a), 'ids, in order').to.deep.equal(want);
      expect(a.groupId).to.equal(groupId);
    }
    const tasks = await settle('group');
    expect(tasks.map((t) => t.id).sort()).to.deep.equal([...want].sort());
    const byId = new Map<string, Task>(tasks.map((t) => [t.id, t]));
    want.forEach((id, i) => {
      const t = byId.get(id)!;
      expect([t.groupId, t.groupIndex, t.groupSize, t.idempotencyKey, TaskState[t.state]], id).to.deep.equal([groupId, i, 20, key, 'DONE']);
    });
    expect(ends('group').map((e) => e.task).sort(), 'one end line per task').to.deep.equal([...want].sort());
  });

  it('a key outlives a kill -9 of the manager: the repeat answers with the stored task and runs nothing', async () => {
    const key = `after-crash-${Date.now()}`;
    const first = await client().runTask({ spec: spec('crash'), idempotencyKey: key }, { deadlineMs: 5000 });
    await settle('crash');
    await manager.kill9();
    await bootManager();
    const again = await waitFor('the restarted manager to answer', () =>
      client().runTask({ spec: spec('crash'), idempotencyKey: key }, { deadlineMs: 2000 }).catch((err: grpc.ServiceError) => {
        if (err.code !== grpc.status.UNAVAILABLE) throw err;
        return undefined;
      }),
    );
    expect(again.task?.id).to.equal(first.task!.id);
    expect(again.task?.state).to.equal(TaskState.DONE);
    expect((await settle('crash')).map((t) => t.id)).to.deep.equal([first.task!.id]);
    expect(ends('crash')).to.have.length(1);
  });

  it('schedctl tasks run --idempotency-key: a rerun prints the same ids and starts nothing', async () => {
    const key = `ctl-${Date.now()}`;
    const ctl = (...args: string[]) => run(BIN.schedctl, ['--manager', `127.0.0.1:${port}`, 'tasks', 'run', '--idempotency-key', key, ...args]);
    const argv = ['--env', 'JOB=ctl', '--env', 'SLEEP=0', '--cpu', '10m', '--mem', '1Mi', '--count', '3', '--', ...jobArgv(ledger)];
    const a = await ctl(...argv);
    expect(a.code, a.stderr).to.equal(0);
    const b = await ctl(...argv);
    expect(b.code, b.stderr).to.equal(0);
    expect(b.stdout).to.equal(a.stdout);
    const printed = a.stdout.trim().split('\n');
    expect(printed).to.have.length(3);
    expect((await settle('ctl')).map((t) => t.id).sort()).to.deep.equal([...printed].sort());
    expect(ends('ctl')).to.have.length(3);
  });
});
