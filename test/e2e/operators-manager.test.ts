// The manager's side of schedctl for operators, with the built manager and worker binaries and
// a gRPC client: worker names, id prefixes and short ids, per-id cancel errors, removing a worker
// that left, and a drain deadline that stops running tasks and places them again. Each test
// starts the workers it needs (their names are its own), so any one runs alone.
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServiceClient, type ServiceClient } from '../../common/grpc-service.js';
import { ManagementService } from '../../proto/gen/schedapi/v1/management_pb.js';
import { TaskState, WorkerState, type Worker } from '../../proto/gen/schedapi/v1/types_pb.js';
import { BIN, startDaemon, startManager, waitFor, writeYaml, type Daemon } from '../support/processes.js';

describe('e2e: the manager for operators (names, references, removal, drain deadlines)', function () {
  this.timeout(90_000);
  let dir: string;
  let address: string;
  let client: ServiceClient<(typeof ManagementService)['method']>;
  const daemons: Daemon[] = [];

  /** Starts a worker-node with this name (and labels); its data dir (so its id) is per key. */
  const startWorker = async (key: string, name: string, labels: Record<string, string> = {}): Promise<{ daemon: Daemon; worker: Worker }> => {
    const data = join(dir, `worker-${key}`);
    const yaml = writeYaml(join(dir, `worker-${key}.yaml`), `manager: ${address}\ndata_dir: ${data}\nname: ${name}\nlabels: ${JSON.stringify(labels)}\ncancel_grace: 5s\n`);
    const daemon = startDaemon(BIN.worker, ['-f', yaml], join(dir, `worker-${key}.log`));
    daemons.push(daemon);
    const worker = await waitFor(`worker ${key} connected`, async () => {
      const id = existsSync(join(data, 'worker-id')) ? readFileSync(join(data, 'worker-id'), 'utf8').trim() : '';
      const w = id ? (await client.getWorker({ id }).catch(() => undefined))?.worker : undefined;
      return w?.state === WorkerState.CONNECTED && w;
    });
    return { daemon, worker };
  };
  const task = async (id: string) => (await client.getTask({ id })).task!;
  const failure = (p: Promise<unknown>) => p.then(() => expect.fail('expected the call to fail'), (err: grpc.ServiceError) => err);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sched-operators-'));
    const manager = await startManager({
      config: `store: {type: embedded, path: ${join(dir, 'store')}}\nping_interval: 300ms\nreconnect_grace: 2s\n`,
      yamlFile: join(dir, 'manager.yaml'),
      logFile: join(dir, 'manager.log'),
    });
    daemons.push(manager.daemon);
    address = manager.address;
    client = createServiceClient(ManagementService, address, grpc.credentials.createInsecure());
  });

  after(async () => {
    client?.close();
    await Promise.all(daemons.map((d) => d.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('workers get their configured name, unique among connected ones, and are named by it or an id prefix', async () => {
    const a = await startWorker('twin-a', 'twin');
    const b = await startWorker('twin-b', 'twin');
    expect([a.worker.name, b.worker.name]).to.deep.equal(['twin', 'twin-2']);
    expect((await client.getWorker({ id: 'twin-2' })).worker!.id).to.equal(b.worker.id);
    expect((await client.getWorker({ id: a.worker.id.slice(0, 13) })).worker!.name).to.equal('twin');
    const listed = (await client.listWorkers({})).workers.map((w) => w.name);
    expect(listed).to.include.members(['twin', 'twin-2']);
  });

  it('tasks are named by a unique prefix or their short id; unknown and ambiguous ids in a cancel come back as errors', async () => {
    const run = await client.runTask({ spec: { argv: ['true'], constraints: { nowhere: 'true' } }, count: 3 });
    const ids = run.tasks.map((t) => t.id);
    expect((await task(ids[1]!.slice(-8))).id).to.equal(ids[1]);
    expect((await task(ids[2]!.slice(0, 32))).id).to.equal(ids[2]);
    const ambiguous = await failure(client.getTask({ id: ids[0]!.slice(0, 8) }));
    expect(ambiguous.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(ambiguous.details).to.match(/^ambiguous task id ".{8}": matches .*; give more characters$/);

    const cancelled = await client.cancelTask({ ids: [ids[0]!.slice(-8), 'nope', ids[1]!] });
    expect(cancelled.tasks.map((t) => t.id)).to.deep.equal([ids[0], ids[1]]);
    expect(cancelled.errors.map((e) => `${e.id}: ${e.message}`)).to.deep.equal(['nope: task "nope" not found']);
    for (const id of ids.slice(0, 2)) expect(await task(id)).to.deep.include({ state: TaskState.DEAD, deadReason: 'cancelled' });
    expect((await task(ids[2]!)).state).to.equal(TaskState.PENDING);
    // Newest first: the group's last task heads a listing of it.
    const listed = await client.listTasks({ groupId: run.groupId.slice(0, 8) });
    expect(listed.tasks.map((t) => t.id)).to.deep.equal([...ids].reverse());
    expect(listed.total).to.equal(3);
  });

  it('a worker is removed only once it has left; the same id coming back is a new worker', async () => {
    const { daemon, worker } = await startWorker('leaver', 'leaver');
    await client.drainWorker({ id: 'leaver', drain: true });
    const refused = await failure(client.removeWorker({ id: 'leaver' }));
    expect(refused.code).to.equal(grpc.status.FAILED_PRECONDITION);
    expect(refused.details).to.match(/is connected/);
    await daemon.stop();
    await waitFor('worker disconnected', async () => (await client.getWorker({ id: worker.id })).worker!.state === WorkerState.DISCONNECTED);
    const removed = await client.removeWorker({ id: 'leaver' });
    expect(removed.worker!.id).to.equal(worker.id);
    expect((await failure(client.getWorker({ id: worker.id }))).code).to.equal(grpc.status.NOT_FOUND);
    expect((await client.listWorkers({})).workers.map((w) => w.id)).to.not.include(worker.id);

    const back = await startWorker('leaver', 'leaver');
    expect(back.worker.id).to.equal(worker.id);
    expect(back.worker.draining, 'a new worker: the old drain is gone with the old record').to.equal(false);
  });

  it('past a drain deadline running tasks are stopped: one with retries runs again elsewhere, one without ends dead drained', async () => {
    const log = join(dir, 'drain-runs.log');
    // Each attempt notes its start and its stop (on SIGTERM), so the order of attempts is on record.
    const script = `echo "start $SCHED_TASK_ID $SCHED_TASK_ATTEMPT" >> ${log}; trap 'echo "stop $SCHED_TASK_ID $SCHED_TASK_ATTEMPT" >> ${log}; exit 143' TERM; sleep 300 & wait`;
    const spec = (retries: number) => ({ argv: ['sh', '-c', script], retries, constraints: { pool: 'drain' } });
    const first = await startWorker('drain-a', 'drain-a', { pool: 'drain' });
    const retried = (await client.runTask({ spec: spec(1) })).task!.id;
    const once = (await client.runTask({ spec: spec(0) })).task!.id;
    await waitFor('both running on the first worker', async () => {
      const text = existsSync(log) ? readFileSync(log, 'utf8') : '';
      return text.includes(`start ${retried} 1`) && text.includes(`start ${once} 1`);
    });
    const second = await startWorker('drain-b', 'drain-b', { pool: 'drain' });

    const drained = await client.drainWorker({ id: 'drain-a', drain: true, deadlineMs: 1000 });
    expect(Number(drained.worker!.drainDeadlineUnixMs)).to.be.greaterThan(Date.now() - 60_000);
    await waitFor('the retried task runs on the other worker', async () => {
      const t = await task(retried);
      return t.state === TaskState.SCHEDULED && t.workerId === second.worker.id && t.retriesUsed === 1;
    }, 30_000);
    await waitFor('the other is dead, drained', async () => (await task(once)).state === TaskState.DEAD, 30_000);
    expect(await task(once)).to.deep.include({ deadReason: 'drained', retriesUsed: 0, workerId: first.worker.id });
    await waitFor('the second attempt started', () => readFileSync(log, 'utf8').includes(`start ${retried} 2`));
    const mine = readFileSync(log, 'utf8').trim().split('\n').filter((l) => l.includes(retried));
    expect(mine, 'the first attempt ended before the second began').to.deep.equal([`start ${retried} 1`, `stop ${retried} 1`, `start ${retried} 2`]);
    await client.cancelTask({ ids: [retried], graceMs: 100 });
  });
});
