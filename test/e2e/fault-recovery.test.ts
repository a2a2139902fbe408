// Exactly once per job through kill -9 faults, on both stores. Each job is
// submitted through the public API with one idempotency key for all its
// retries (schedctl's retry loop) while the manager is killed with -9 and
// restarted several times during the burst, stalled once past the clients'
// deadlines (so retries race the requests they replace), each worker is
// crashed once (its tasks frozen with it, so none can finish unseen) and, on
// etcd, etcd is killed too. Every task appends a start and an end line with
// its job id to one O_APPEND ledger; a run counts by its end line. Once the
// system is quiescent the manager is killed once more and the final states
// are read back from the store before anything is counted. A manager that
// steps down (status 3: it was stalled, or cut off from etcd, past its leader
// lease) is started again, as its supervisor would.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { createServiceClient } from '../../common/grpc-service.js';
import { ManagementService } from '../../proto/gen/schedapi/v1/management_pb.js';
import { TaskState, WorkerState, type Task } from '../../proto/gen/schedapi/v1/types_pb.js';
import { retryUnary } from '../../schedctl/src/retry.js';
import { startEtcd, type EtcdHandle } from '../support/etcd.js';
import {
  crashWorker,
  inFlight,
  jobArgv,
  listAll,
  processGone,
  readLedger,
  waitQuiescent,
  type Client,
  type Mark,
} from '../support/exactly-once.js';
import { BIN, startDaemon, startManager, waitFor, writeYaml, type Daemon } from '../support/processes.js';

const JOBS = Number(process.env.FAULT_JOBS ?? 600);
const SUBMITTERS = 32;
/** Every fifth job sleeps 1-3 s between its start and end lines, so some straddle each kill. */
const sleepOf = (slot: number): string => (slot % 5 === 0 ? String(1 + (slot % 3)) : '0');

type Fault = { at: number; kind: 'manager' | 'stall' | 'etcd' } | { at: number; kind: 'worker'; n: 0 | 1 };

for (const storeKind of ['embedded', 'etcd'] as const) {
  describe(`e2e: exactly once per job through kill -9 faults (${storeKind} store)`, function () {
    this.timeout(150_000);
    let dir: string;
    /** The manager's port: the kernel's pick at its first start, and the same port at every restart (workers and the client dial it). */
    let port: number | undefined;
    let etcd: EtcdHandle | undefined;
    let managerConfig: string;
    let manager: Daemon;
    const workers: Daemon[] = [];
    const daemons: Daemon[] = [];
    const frozenGroups: number[] = [];
    let client: Client;

    /** While true, a manager that exits with status 3 (it may no longer lead: frozen or cut off from etcd past its lease) is started again, as its supervisor would. */
    let supervising = true;
    let rebooting: Promise<void> | undefined;
    /** Starts the manager and resolves once it is ready. */
    const bootManager = async () => {
      const m = await startManager({ config: managerConfig, yamlFile: join(dir, 'manager.yaml'), logFile: join(dir, 'manager.log'), ...(port === undefined ? {} : { port }) });
      const daemon = (manager = m.daemon);
      daemons.push(manager);
      port = m.port;
      void daemon.exited.then((code) => {
        if (code === 3 && supervising && manager === daemon) rebooting = bootManager().finally(() => (rebooting = undefined));
      });
    };
    /** kill -9 of the manager (once any restart by the supervisor is done), then a start. */
    const crashManager = async () => {
      while (rebooting) await rebooting;
      await manager.kill9();
      await bootManager();
    };
    const startWorker = (n: 0 | 1) => {
      const yaml = writeYaml(
        join(dir, `worker-${n + 1}.yaml`),
        `manager: 127.0.0.1:${port}\ndata_dir: ${join(dir, `worker-${n + 1}`)}\nreconnect_interval: 100ms\nreconnect_max: 500ms\ncapacity: {cpu: 8, memory: 8Gi}\nlog_level: info\n`,
      );
      workers[n] = startDaemon(BIN.worker, ['-f', yaml], join(dir, `worker-${n + 1}.log`));
      daemons.push(workers[n]!);
    };

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), `sched-fault-${storeKind}-`));
      if (storeKind === 'etcd') etcd = await startEtcd();
      const store =
        storeKind === 'etcd'
          ? `{type: etcd, endpoints: ["${etcd!.endpoint}"], prefix: /fault/, dial_timeout: 1s}`
          : `{type: embedded, path: ${join(dir, 'store')}}`;
      managerConfig = `store: ${store}\nping_interval: 500ms\nack_timeout: 3s\nrecovery_grace: 10s\nlog_level: info\n`;
      await bootManager();
      startWorker(0);
      startWorker(1);
      client = createServiceClient(ManagementService, `127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 500,
      });
      await waitFor('two workers connected', async () => {
        const { workers: ws } = await client.listWorkers({}, { deadlineMs: 2000 });
        return ws.filter((w) => w.state === WorkerState.CONNECTED).length === 2;
      });
    });

    after(async () => {
      supervising = false;
      while (rebooting) await rebooting.catch(() => undefined);
      client?.close();
      await Promise.all(daemons.map((d) => d.stop()));
      // Task groups frozen with a crashed worker that its successor did not reap (a failure, reported by the test).
      for (const g of frozenGroups) {
        try {
          if (!processGone(g)) process.kill(-g, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
      await etcd?.stop();
      if (!process.env.KEEP_FAULT_DIR) rmSync(dir, { recursive: true, force: true });
    });

    it(`${JOBS} jobs: none lost, none run twice, none run unstored`, async () => {
      const ledger = join(dir, 'ledger.txt');
      const run = randomBytes(4).toString('hex');
      const acked = new Map<string, string>(); // job → task id
      const failed = new Map<string, string>(); // job → the error that ended its retries
      const wrongAnswer: string[] = [];
      let retriedAttempts = 0;
      let timedOut = 0; // attempts that ran past their deadline
      const faults: string[] = [];
      const atManagerKill: Mark[] = [];
      const atWorkerKill: Mark[] = [];
      let etcdDown = false;
      const outage: grpc.ServiceError[] = [];

      // Wakes the fault injector when enough jobs are acknowledged.
      const wake = new Set<() => void>();
      const untilAcked = async (n: number) => {
        while (acked.size + failed.size < n) await new Promise<void>((r) => wake.add(r));
      };

      const submit = async (slot: number) => {
        const job = `j${slot}`;
        try {
          const res = await retryUnary(
            (deadlineMs) => {
              // Errors of attempts made and failed while etcd is down say what the outage looks like.
              const down = etcdDown;
              const spec = {
                argv: jobArgv(ledger),
                env: { JOB: job, SLEEP: sleepOf(slot) },
                resources: { millicpu: 10n, memoryBytes: 1n << 20n },
                retries: 10,
                strategy: 'spread',
              };
              return client.runTask({ spec, idempotencyKey: `fault-${run}-${job}` }, { deadlineMs }).catch((err: grpc.ServiceError) => {
                if (down && etcdDown) outage.push(err);
                throw err;
              });
            },
            {
              totalMs: 90_000,
              attemptMs: 1000,
              initialDelayMs: 50,
              maxDelayMs: 1000,
              onRetry: (err) => {
                retriedAttempts++;
                if ((err as grpc.ServiceError).code === grpc.status.DEADLINE_EXCEEDED) timedOut++;
              },
            },
          );
          acked.set(job, res.task!.id);
          if (res.task?.spec?.env.JOB !== job) wrongAnswer.push(`${job} got ${res.task?.id} of ${res.task?.spec?.env.JOB}`);
        } catch (err) {
          failed.set(job, `${grpc.status[(err as grpc.ServiceError).code] ?? ''} ${(err as Error).message}`);
        }
        for (const w of wake) w();
        wake.clear();
      };

      // When each fault strikes, as a share of the jobs acknowledged.
      const plan: Fault[] = (
        [
          { at: 0.1, kind: 'manager' },
          { at: 0.18, kind: 'stall' },
          { at: 0.26, kind: 'manager' },
          { at: 0.38, kind: 'manager' },
          ...(storeKind === 'etcd' ? [{ at: 0.46, kind: 'etcd' }] : []),
          { at: 0.54, kind: 'manager' },
          // Worker crashes go on beside the others (crashWorker waits for a safe moment, which takes a while).
          { at: 0.3, kind: 'worker', n: 0 },
          { at: 0.6, kind: 'worker', n: 1 },
        ] as Fault[]
      ).map((f) => ({ ...f, at: Math.round(f.at * JOBS) }));

      const inject = async (faultsOf: Fault[]) => {
        for (const f of faultsOf) {
          await untilAcked(f.at);
          if (f.kind === 'manager') {
            atManagerKill.push(...inFlight(readLedger(ledger)));
            faults.push(`manager at ${acked.size} acked`);
            await crashManager();
          } else if (f.kind === 'stall') {
            // A manager that stops answering (SIGSTOP) past the clients' deadlines: each retry, with
            // the same key, reaches it alongside the request it replaces once it goes on.
            const before = timedOut;
            faults.push(`manager stalled at ${acked.size} acked`);
            manager.signal('SIGSTOP');
            await waitFor('RunTask attempts to run past their deadline', () => timedOut >= before + 5, 15_000, 20).finally(() => manager.signal('SIGCONT'));
          } else if (f.kind === 'worker') {
            const victim = workers[f.n]!;
            const crash = await crashWorker(victim, ledger, join(dir, `worker-${f.n + 1}`, 'outbox'), client);
            frozenGroups.push(...crash.groups);
            atWorkerKill.push(...crash.inFlight);
            faults.push(`worker ${f.n + 1} at ${acked.size} acked (${crash.inFlight.length} running, ${crash.retries} refreezes)`);
            startWorker(f.n);
          } else {
            faults.push(`etcd at ${acked.size} acked`);
            await etcd!.kill9();
            etcdDown = true;
            await waitFor('a submission to fail while etcd is down', () => outage.length > 0, 15_000, 20).finally(() => (etcdDown = false));
            await etcd!.restart();
          }
        }
      };

      let next = 0;
      const submitter = async () => {
        for (let slot = next++; slot < JOBS; slot = next++) await submit(slot);
      };
      const t0 = Date.now();
      const chains = [plan.filter((f) => f.kind !== 'worker'), plan.filter((f) => f.kind === 'worker')];
      await Promise.all([...chains.map(inject), ...Array.from({ length: SUBMITTERS }, submitter)]);
      const burstMs = Date.now() - t0;
      expect([...failed].map(([j, e]) => `${j}: ${e}`), 'jobs whose RunTask retries ended without an answer').to.deep.equal([]);
      expect(acked.size).to.equal(JOBS);
      expect(wrongAnswer, 'RunTask answered with another job\'s task').to.deep.equal([]);
      if (storeKind === 'etcd') {
        // While etcd is down, submissions fail fast with UNAVAILABLE: the store is unavailable, or, once
        // the manager has stepped down (it cannot renew its leader lease) and is being restarted, the
        // manager cannot be reached or is starting.
        for (const e of outage) {
          expect(e.code, e.details).to.equal(grpc.status.UNAVAILABLE);
          expect(e.details).to.match(/^store unavailable: |No connection established|ECONNREFUSED|^management node is starting/);
        }
      }

      const quiet = await waitQuiescent(client, 2, frozenGroups, 60_000);
      // One more crash of the manager: what is counted is what the store kept.
      await crashManager();
      faults.push('manager after quiescence');
      const tasks = await waitFor('the restarted manager to list every task', async () => {
        const all = await listAll(client);
        return all.length >= quiet.tasks.length && all;
      }, 30_000, 100);
      const finalBefore = new Map(quiet.tasks.map((t) => [t.id, `${TaskState[t.state]}/${t.attempt}/${t.exitCode}`]));
      expect(new Map(tasks.map((t) => [t.id, `${TaskState[t.state]}/${t.attempt}/${t.exitCode}`]))).to.deep.equal(finalBefore);

      const book = readLedger(ledger);
      const stored = new Map(tasks.map((t) => [t.id, t]));
      const tasksOfJob = new Map<string, Task[]>();
      for (const t of tasks) tasksOfJob.set(t.spec?.env.JOB ?? '?', [...(tasksOfJob.get(t.spec?.env.JOB ?? '?') ?? []), t]);
      const lost: string[] = [];
      const dead: string[] = [];
      for (const [job, id] of acked) {
        const t = stored.get(id);
        if (t?.state === TaskState.DEAD) dead.push(`${job}: ${t.deadReason}`);
        if (!book.ends.has(job) && !(t?.state === TaskState.DEAD && t.deadReason)) lost.push(`${job} (${t ? `${TaskState[t.state]} attempt ${t.attempt} ${t.signal} ${t.error}` : 'not stored'})`);
      }
      const twice = [...book.ends].filter(([, ends]) => ends.length > 1).map(([job, ends]) => `${job}: ${ends.map((e) => `${e.task}.${e.attempt} (worker pid ${e.ppid})`).join(' ')}`);
      const unstored = [...new Set(book.marks.filter((m) => !stored.has(m.task)).map((m) => `${m.job} (${m.task})`))];
      const duplicates = [...tasksOfJob].filter(([, ts]) => ts.length > 1).map(([job, ts]) => `${job}: ${ts.length} tasks`);
      const ranOther = [...book.ends].filter(([job, ends]) => ends.some((e) => e.task !== acked.get(job))).map(([job]) => job);
      // Attempts running at a manager kill that the restarted manager adopted: ended and stored done as that attempt.
      const adopted = atManagerKill.filter((m) => book.ended.has(`${m.task}.${m.attempt}`) && stored.get(m.task)?.state === TaskState.DONE && stored.get(m.task)?.attempt === m.attempt);
      // Attempts frozen with a crashed worker whose job then ran to its end in a later attempt.
      const ranAgain = atWorkerKill.filter((m) => (book.ends.get(m.job) ?? []).some((e) => e.task === m.task && e.attempt > m.attempt));

      console.log(
        [
          `      [${storeKind}] jobs ${JOBS}, acked ${acked.size}, lost ${lost.length}, ran twice ${twice.length}, ran but not stored ${unstored.length}, ` +
            `duplicate tasks ${duplicates.length}, dead ${dead.length}`,
          `      faults: ${faults.join('; ')}`,
          ...(dead.length ? [`      dead: ${dead.slice(0, 5).join('; ')}${dead.length > 5 ? '; …' : ''}`] : []),
          `      in flight at manager kills ${atManagerKill.length} (adopted ${adopted.length}); at worker kills ${atWorkerKill.length} (ran again ${ranAgain.length}); ` +
            `RunTask retries ${retriedAttempts} (${timedOut} past the deadline); burst ${burstMs}ms, quiescent ${quiet.waitedMs}ms later`,
        ].join('\n'),
      );
      expect(book.malformed, 'torn ledger lines').to.deep.equal([]);
      expect(lost, 'lost: acknowledged, never ran, not dead with a reason').to.deep.equal([]);
      expect(twice, `ran twice (${twice.length}): ${twice.slice(0, 5).join('; ')}`).to.deep.equal([]);
      expect(unstored, 'ran but not stored').to.deep.equal([]);
      expect(duplicates, 'more than one task for one idempotency key').to.deep.equal([]);
      expect(ranOther, 'ran a task other than the acknowledged one').to.deep.equal([]);
      expect(adopted.length, 'a task in flight at a manager kill finished after the restart as the same attempt').to.be.greaterThan(0);
      expect(atWorkerKill.length, 'a task in flight at a worker kill').to.be.greaterThan(0);
      expect(ranAgain.length, 'a task stranded by a worker crash ran again to its end').to.be.greaterThan(0);
      expect(faults).to.have.length(plan.length + 1);
    });
  });
}
