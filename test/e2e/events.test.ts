// WatchEvents with the built manager and worker, on a real etcd and on the
// embedded store: tasks run, their stored changes arrive with increasing store
// revisions, and a stream resumed from the middle carries on exactly there.
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManagementService, type WatchEventsResponse } from '../../proto/gen/schedapi/v1/management_pb.js';
import { TaskState, WorkerState, type Task } from '../../proto/gen/schedapi/v1/types_pb.js';
import { createServiceClient, type ServiceClient } from '../../common/grpc-service.js';
import { startEtcd, type EtcdHandle } from '../support/etcd.js';
import { BIN, startDaemon, startManager, waitFor, writeYaml, type Daemon } from '../support/processes.js';
import { until } from '../support/until.js';

type Client = ServiceClient<(typeof ManagementService)['method']>;

/** A stream's events as they arrive, and how it ended. */
function collect(call: grpc.ClientReadableStream<WatchEventsResponse>) {
  const got: WatchEventsResponse[] = [];
  const state: { err?: grpc.ServiceError } = {};
  call.on('data', (e: WatchEventsResponse) => got.push(e));
  call.on('error', (err: grpc.ServiceError) => (state.err = err));
  return { call, got, state };
}

const key = (e: WatchEventsResponse) => `${e.revision}:${e.object.case}:${e.object.value?.id}:${e.object.case === 'task' ? e.object.value.state : ''}`;

for (const storeKind of ['etcd', 'embedded'] as const) {
  describe(`e2e: WatchEvents (${storeKind} store)`, function () {
    this.timeout(90_000);
    let dir: string;
    let config: string;
    let etcd: EtcdHandle | undefined;
    let client: Client;
    const daemons: Daemon[] = [];
    const streams: Array<grpc.ClientReadableStream<WatchEventsResponse>> = [];
    const watch = (req: Parameters<Client['watchEvents']>[0]) => {
      const c = collect(client.watchEvents(req));
      streams.push(c.call);
      return c;
    };
    const runTask = async (argv: string[]) => (await client.runTask({ spec: { argv } })).task!.id;
    const doneIn = (got: WatchEventsResponse[], id: string) =>
      got.some((e) => e.object.case === 'task' && e.object.value.id === id && e.object.value.state === TaskState.DONE);

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), `sched-events-${storeKind}-`));
      if (storeKind === 'etcd') etcd = await startEtcd();
      const store =
        storeKind === 'etcd' ? `{type: etcd, endpoints: ["${etcd!.endpoint}"], prefix: /events/, dial_timeout: 1s}` : `{type: embedded, path: ${join(dir, 'store')}}`;
      config = `store: ${store}\nping_interval: 500ms\nlog_level: info\n`;
      const manager = await startManager({
        config,
        yamlFile: join(dir, 'manager.yaml'),
        logFile: join(dir, 'manager.log'),
      });
      daemons.push(manager.daemon);
      client = createServiceClient(ManagementService, manager.address, grpc.credentials.createInsecure());
      // The worker connects after the first stream starts, so that stream hears of it.
      const workerYaml = writeYaml(join(dir, 'worker.yaml'), `manager: ${manager.address}\ndata_dir: ${join(dir, 'worker')}\nlog_level: info\n`);
      startWorker = () => daemons.push(startDaemon(BIN.worker, ['-f', workerYaml], join(dir, 'worker.log')));
    });
    let startWorker: () => void;

    after(async () => {
      for (const s of streams) s.cancel();
      client?.close();
      await Promise.all(daemons.map((d) => d.stop()));
      await etcd?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('streams the stored changes of tasks and workers with increasing revisions; a stream resumed from the middle carries on exactly there', async () => {
      // From the revision of a listing: nothing after it is missed.
      const listed = await client.listTasks({});
      expect(listed.revision > 0n, 'ListTasks carries the store revision').to.equal(true);
      const all = watch({ afterRevision: listed.revision });
      const tasksOnly = watch({ tasks: true, afterRevision: listed.revision });
      startWorker();
      await waitFor('the worker connected', async () => (await client.listWorkers({})).workers.some((w) => w.state === WorkerState.CONNECTED));
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push(await runTask(['sh', '-c', `exit ${i}`]));
      await until('every task ended, as events', () => ids.every((id) => doneIn(all.got, id)), 30_000);

      const got = all.got;
      for (let i = 1; i < got.length; i++) expect(got[i]!.revision >= got[i - 1]!.revision, 'revisions never go back').to.equal(true);
      expect(got[0]!.revision > listed.revision).to.equal(true);
      const workerEvents = got.filter((e) => e.object.case === 'worker');
      expect(workerEvents.some((e) => e.object.case === 'worker' && e.object.value.state === WorkerState.CONNECTED), 'the worker connecting').to.equal(true);
      for (const [i, id] of ids.entries()) {
        const states = got.filter((e) => e.object.case === 'task' && e.object.value.id === id).map((e) => (e.object.value as Task).state);
        expect(states[0], `task ${i} was stored pending first`).to.equal(TaskState.PENDING);
        expect(states.at(-1)).to.equal(TaskState.DONE);
        const done = got.filter((e) => e.object.case === 'task' && e.object.value.id === id).at(-1)!.object.value as Task;
        expect(done.exitCode).to.equal(i);
      }
      await until('the task stream caught up', () => ids.every((id) => doneIn(tasksOnly.got, id)));
      expect(tasksOnly.got.map(key)).to.deep.equal(got.filter((e) => e.object.case === 'task').map(key).slice(0, tasksOnly.got.length));

      // Resume after the revision of an event in the middle: the same events from there, then live ones.
      const mid = got[Math.floor(got.length / 2)]!.revision;
      const resumed = watch({ afterRevision: mid });
      const later = await runTask(['true']);
      await until('the resumed stream got the new task done', () => doneIn(resumed.got, later), 30_000);
      await until('the first stream too', () => doneIn(all.got, later));
      expect(resumed.got.map(key)).to.deep.equal(all.got.filter((e) => e.revision > mid).map(key).slice(0, resumed.got.length));
      expect(resumed.got.length).to.equal(all.got.filter((e) => e.revision > mid).length);
      expect(resumed.state.err).to.equal(undefined);
    });

    it('a restarted manager refuses to resume from before it led (OUT_OF_RANGE); from a new listing it serves', async () => {
      const last = (await client.listTasks({})).revision;
      // A change after it, which the restarted manager's history starts after.
      await runTask(['true']);
      for (const st of streams.splice(0)) st.cancel();
      client.close();
      await daemons.shift()!.stop();
      const manager = await startManager({ config, yamlFile: join(dir, 'manager.yaml'), logFile: join(dir, 'manager.log') });
      daemons.unshift(manager.daemon);
      client = createServiceClient(ManagementService, manager.address, grpc.credentials.createInsecure());
      const stale = watch({ afterRevision: last });
      await until('refused', () => stale.state.err !== undefined);
      expect(stale.state.err!.code).to.equal(grpc.status.OUT_OF_RANGE);
      expect(stale.state.err!.details).to.match(/after_revision \d+ is older than this manager's event history/);
      const listed = await client.listTasks({});
      expect(listed.revision >= last).to.equal(true);
      const fresh = watch({ afterRevision: listed.revision });
      const id = await runTask(['true']);
      await until('the new task arrived', () => fresh.got.some((e) => e.object.value?.id === id));
      expect(fresh.state.err).to.equal(undefined);
    });
  });
}
