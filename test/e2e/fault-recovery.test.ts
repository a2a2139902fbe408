// Nothing acknowledged is lost, nothing runs twice: 2,000 tasks submitted
// concurrently through the public API while the manager (and etcd) are
// killed with -9 and restarted. Each task appends its token to one file.
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { createServiceClient, type ServiceClient } from '../../common/grpc-service.js';
import { ManagementService } from '../../proto/gen/sched/v1/management_pb.js';
import { TaskState, WorkerState } from '../../proto/gen/sched/v1/types_pb.js';
import { freePorts, startEtcd, type EtcdHandle } from '../support/etcd.js';
import { BIN, startDaemon, waitFor, writeYaml, type Daemon } from '../support/processes.js';

const TASKS = Number(process.env.FAULT_TASKS ?? 2000);
const IN_FLIGHT = 64;

type Client = ServiceClient<(typeof ManagementService)['method']>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const between = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo));

for (const storeKind of ['embedded', 'etcd'] as const) {
  describe(`e2e: crash recovery on the ${storeKind} store`, function () {
    this.timeout(240_000);
    let dir: string;
    let etcd: EtcdHandle | undefined;
    let managerYaml: string;
    let manager: Daemon;
    let client: Client;
    const daemons: Daemon[] = [];

    const startManager = () => {
      manager = startDaemon(BIN.manager, ['-f', managerYaml], join(dir, 'manager.log'));
      daemons.push(manager);
    };

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), `sched-fault-${storeKind}-`));
      const [port] = (await freePorts(1)) as [number];
      if (storeKind === 'etcd') etcd = await startEtcd();
      const store =
        storeKind === 'etcd'
          ? `{type: etcd, endpoints: ["${etcd!.endpoint}"], prefix: /fault/, dial_timeout: 1s}`
          : `{type: embedded, path: ${join(dir, 'store')}}`;
      managerYaml = writeYaml(
        join(dir, 'manager.yaml'),
        `listen: 127.0.0.1:${port}\nstore: ${store}\nping_interval: 500ms\nack_timeout: 3s\nrecovery_grace: 10s\nlog_level: info\n`,
      );
      startManager();
      for (const n of [1, 2]) {
        const yaml = writeYaml(
          join(dir, `worker-${n}.yaml`),
          `manager: 127.0.0.1:${port}\ndata_dir: ${join(dir, `worker-${n}`)}\nreconnect_interval: 200ms\nlog_level: info\n`,
        );
        daemons.push(startDaemon(BIN.worker, ['-f', yaml], join(dir, `worker-${n}.log`)));
      }
      client = createServiceClient(ManagementService, `127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 500,
      });
      await waitFor('two workers connected', async () => {
        const { workers } = await client.listWorkers({}, { deadlineMs: 2000 });
        return workers.filter((w) => w.state === WorkerState.CONNECTED).length === 2;
      });
    });

    after(async () => {
      client?.close();
      await Promise.all(daemons.map((d) => d.stop()));
      await etcd?.stop();
      if (!process.env.KEEP_FAULT_DIR) rmSync(dir, { recursive: true, force: true });
    });

    it(`every acknowledged task of ${TASKS} ends done exactly once through kill -9 faults`, async () => {
      const out = join(dir, 'ran.txt');
      const acked = new Map<string, string>(); // token → task id
      const tried = new Set<string>();
      const faults: string[] = [];
      const outageErrors: grpc.ServiceError[] = [];
      let etcdDown = false;
      const killManagerAt = between(300, 1000);
      const killEtcdAt = between(1200, 1700);
      let faultInProgress: Promise<void> | undefined;

      const inject = async () => {
        if (!faultInProgress && faults.length === 0 && acked.size >= killManagerAt) {
          faultInProgress = (async () => {
            faults.push(`manager killed at ${acked.size} acked`);
            await manager.kill9();
            await sleep(300);
            startManager();
          })();
        } else if (!faultInProgress && etcd && faults.length === 1 && acked.size >= killEtcdAt) {
          faultInProgress = (async () => {
            faults.push(`etcd killed at ${acked.size} acked`);
            await etcd!.kill9();
            etcdDown = true;
            await sleep(500);
            etcdDown = false;
            await etcd!.restart();
          })();
        }
        if (faultInProgress) {
          await faultInProgress;
          faultInProgress = undefined;
        }
      };

      let next = 0;
      const submitter = async () => {
        for (;;) {
          const slot = next++;
          if (slot >= TASKS) return;
          for (let attempt = 0; ; attempt++) {
            const token = `t${slot}r${attempt}`;
            tried.add(token);
            try {
              const res = await client.runTask(
                { spec: { argv: ['sh', '-c', `echo ${token} >> ${out}`] } },
                { deadlineMs: 5000 },
              );
              acked.set(token, res.task!.id);
              break;
            } catch (err) {
              if (etcdDown) outageErrors.push(err as grpc.ServiceError);
              await sleep(100);
            }
          }
          void inject();
        }
      };
      await Promise.all(Array.from({ length: IN_FLIGHT }, submitter));
      await faultInProgress;
      expect(acked.size).to.equal(TASKS);
      expect(faults).to.have.length(storeKind === 'etcd' ? 2 : 1);
      if (storeKind === 'etcd') {
        // While etcd is down, submissions fail fast with UNAVAILABLE and a message naming etcd.
        expect(outageErrors.length).to.be.greaterThan(0);
        for (const e of outageErrors) {
          expect(e.code).to.equal(grpc.status.UNAVAILABLE);
          expect(e.details).to.match(/store unavailable: etcd at http:\/\/127\.0\.0\.1:\d+/);
        }
      }

      const counts = () => {
        const c = new Map<string, number>();
        let text = '';
        try {
          text = readFileSync(out, 'utf8');
        } catch {
          // not created yet
        }
        for (const line of text.split('\n')) if (line) c.set(line, (c.get(line) ?? 0) + 1);
        return c;
      };
      await waitFor(
        'every acknowledged task to run',
        () => {
          const c = counts();
          return [...acked.keys()].every((t) => c.has(t));
        },
        120_000,
        250,
      );
      await waitFor('every acknowledged task done', async () => {
        let done = 0;
        let pageToken = '';
        do {
          const page = await client.listTasks({ state: TaskState.DONE, limit: 1000, pageToken }, { deadlineMs: 5000 });
          for (const t of page.tasks) if (t.exitCode === 0 && acked.has(t.spec!.argv[2]!.split(' ')[1]!)) done++;
          pageToken = page.nextPageToken;
        } while (pageToken);
        if (done === TASKS) return true;
        const status = await client.status({}, { deadlineMs: 5000 });
        throw new Error(`${done} acknowledged done; manager counts ${JSON.stringify(status.tasksByState)}`);
      }, 60_000, 500);
      await sleep(1000); // a duplicate run would show up here
      const c = counts();
      const twice = [...c].filter(([, n]) => n > 1).map(([t]) => t);
      expect(twice, `ran more than once (faults: ${faults.join(', ')})`).to.deep.equal([]);
      const strangers = [...c.keys()].filter((t) => !tried.has(t));
      expect(strangers).to.deep.equal([]);
      // Tokens never acknowledged (the manager died mid-call) may have run, but at most once (checked above).
    });
  });
}
