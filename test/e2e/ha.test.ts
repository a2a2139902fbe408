// High availability with the real binaries on a real 3-member etcd cluster on
// loopback: several managers, one leader (an etcd lease), fenced writes,
// followers that name the leader, and failover with nothing lost or run twice.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { leaderHint } from '../../common/errors.js';
import { createManagerClient } from '../../common/manager-client.js';
import { createServiceClient } from '../../common/grpc-service.js';
import { ManagementService } from '../../proto/gen/sched/v1/management_pb.js';
import { TaskState, WorkerState } from '../../proto/gen/sched/v1/types_pb.js';
import { retryUnary } from '../../schedctl/src/retry.js';
import { startEtcdCluster, type EtcdCluster } from '../support/etcd-cluster.js';
import { jobArgv, readLedger, waitQuiescent, type Client } from '../support/exactly-once.js';
import { BIN, run, startDaemon, startManager, waitFor, writeYaml, type Daemon } from '../support/processes.js';

interface Manager {
  n: number;
  daemon: Daemon;
  address: string;
}

describe('e2e: several managers on one etcd cluster', function () {
  this.timeout(180_000);
  let dir: string;
  let etcd: EtcdCluster;
  const daemons: Daemon[] = [];
  const clients: Array<{ close(): void }> = [];
  let prefix = 0;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sched-ha-'));
    etcd = await startEtcdCluster(3);
  });
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(daemons.map((d) => d.stop()));
    await etcd?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Starts `count` managers on a fresh prefix; resolves once all listen, the leader first in the result. */
  async function startManagers(count: number, extra = ''): Promise<Manager[]> {
    const p = `/ha${++prefix}/`;
    const config = `store: {type: etcd, endpoints: [${etcd.endpoints.map((e) => `"${e}"`).join(', ')}], prefix: ${p}, dial_timeout: 1s}\nleader_lease: 2s\nping_interval: 500ms\nrecovery_grace: 5s\nlog_level: info\n${extra}`;
    const started: Manager[] = [];
    for (let n = 0; n < count; n++) {
      const m = await startManager({ config, yamlFile: join(dir, `m${prefix}-${n}.yaml`), logFile: join(dir, `m${prefix}-${n}.log`), until: 'listening' });
      daemons.push(m.daemon);
      started.push({ n, daemon: m.daemon, address: m.address });
    }
    const leader = await waitFor('a leader among the managers', () => started.find((m) => /"msg":"management node ready"/.test(m.daemon.log())));
    return [leader, ...started.filter((m) => m !== leader)];
  }

  function clientOf(managers: Manager[]): Client {
    const c = createManagerClient(ManagementService, managers.map((m) => m.address), grpc.credentials.createInsecure(), {
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 500,
    }) as unknown as Client;
    clients.push(c);
    return c;
  }

  function startWorker(name: string, managers: Manager[]): Daemon {
    const yaml = writeYaml(
      join(dir, `${name}.yaml`),
      `managers: [${managers.map((m) => m.address).join(', ')}]\ndata_dir: ${join(dir, name)}\nreconnect_interval: 100ms\nreconnect_max: 1s\ncapacity: {cpu: 8, memory: 8Gi}\nlog_level: info\n`,
    );
    const d = startDaemon(BIN.worker, ['-f', yaml], join(dir, `${name}.log`));
    daemons.push(d);
    return d;
  }

  it('one leads; the others refuse with the leader\'s address, and Status says who leads', async () => {
    const [leader, ...followers] = await startManagers(3);
    for (const f of followers) {
      const direct = createServiceClient(ManagementService, f.address, grpc.credentials.createInsecure());
      clients.push(direct);
      const err = (await direct.runTask({ spec: { argv: ['true'] } }).catch((e: unknown) => e)) as grpc.ServiceError;
      expect(err.code, err.details).to.equal(grpc.status.FAILED_PRECONDITION);
      expect(err.details).to.equal(`not the leader; the leader is at ${leader!.address}`);
      expect(leaderHint(err)).to.equal(leader!.address);
      const all = [leader!, ...followers].map((m) => m.address).sort();
      // Each manager registers once it listens: the last may come a moment after.
      const status = await waitFor('every manager registered', async () => {
        const st = await direct.status({});
        return st.managers.slice().sort().join() === all.join() && st;
      });
      expect(status).to.deep.include({ role: 'follower', leader: leader!.address, workersTotal: 0 });
    }
    const direct = createServiceClient(ManagementService, leader!.address, grpc.credentials.createInsecure());
    clients.push(direct);
    const status = await direct.status({});
    expect(status).to.deep.include({ role: 'leader', leader: leader!.address });
    expect(status.term > 0n).to.equal(true);
    // A follower answers Status itself, naming the same leader and term.
    expect(await clientOf([followers[0]!, leader!]).status({})).to.deep.include({ role: 'follower', leader: leader!.address, term: status.term });
    // The client followed the follower's answer to the leader and submits there.
    const client = clientOf(followers);
    const { task } = await client.runTask({ spec: { argv: ['true'] } });
    expect((await client.getTask({ id: task!.id })).task!.state).to.equal(TaskState.PENDING);
    expect((client as unknown as { current(): string }).current()).to.equal(leader!.address);
  });

  it('a second manager on the same embedded store is refused with a clear error', async () => {
    const config = `store: {type: embedded, path: ${join(dir, 'embedded')}}\nlog_level: info\n`;
    const first = await startManager({ config, yamlFile: join(dir, 'e1.yaml'), logFile: join(dir, 'e1.log') });
    daemons.push(first.daemon);
    const second = await run(BIN.manager, ['-f', writeYaml(join(dir, 'e2.yaml'), `listen: 127.0.0.1:0\n${config}`)], { timeoutMs: 30_000 });
    expect(second.code).to.equal(2);
    expect(second.stderr).to.include(`the embedded store ${join(dir, 'embedded')} is in use by another management-node (pid ${first.daemon.pid})`);
    expect(second.stderr).to.match(/use etcd/);
    // The first goes on serving.
    const c = clientOf([{ n: 0, daemon: first.daemon, address: first.address }]);
    expect((await c.status({})).role).to.equal('leader');
  });

  it('a leader frozen past its lease is replaced; thawed, it steps down and writes nothing', async () => {
    const [old, ...others] = await startManagers(2);
    const client = clientOf([old!, ...others]);
    startWorker('w-freeze', [old!, ...others]);
    await waitFor('the worker connected', async () => (await client.listWorkers({}, { deadlineMs: 2000 })).workers.some((w) => w.state === WorkerState.CONNECTED));
    old!.daemon.signal('SIGSTOP');
    const next = await waitFor('a follower to lead', () => others.find((m) => /"msg":"management node ready"/.test(m.daemon.log())), 20_000);
    // The new leader runs tasks (the worker moved to it).
    const res = await retryUnary((deadlineMs) => client.runTask({ spec: { argv: ['true'] } }, { deadlineMs }), { totalMs: 30_000, attemptMs: 2000 });
    await waitFor('the task done under the new leader', async () => (await client.getTask({ id: res.task!.id }, { deadlineMs: 2000 })).task!.state === TaskState.DONE, 30_000);
    // Thaw the old leader while the new one is frozen for a moment: any write now would be the old one's.
    next!.daemon.signal('SIGSTOP');
    const raw = etcd.client();
    const before = (await raw.get('x').exec()).header.revision;
    old!.daemon.signal('SIGCONT');
    expect(await old!.daemon.exited).to.equal(3);
    const after = (await raw.get('x').exec()).header.revision;
    next!.daemon.signal('SIGCONT');
    expect(after, 'store revision while only the thawed old leader ran').to.equal(before);
    expect(old!.daemon.log()).to.match(/no longer the leader/);
    // And the new leader carries on.
    const again = await retryUnary((deadlineMs) => client.runTask({ spec: { argv: ['true'] } }, { deadlineMs }), { totalMs: 30_000, attemptMs: 2000 });
    await waitFor('a task done after the thaw', async () => (await client.getTask({ id: again.task!.id }, { deadlineMs: 2000 })).task!.state === TaskState.DONE, 30_000);
  });

  it('kill -9 of the leader, then of the etcd leader, under load: every acknowledged task runs exactly once', async () => {
    const managers = await startManagers(3);
    const client = clientOf(managers);
    startWorker('w-a', managers);
    startWorker('w-b', managers);
    await waitFor('two workers connected', async () => (await client.listWorkers({}, { deadlineMs: 2000 })).workers.filter((w) => w.state === WorkerState.CONNECTED).length === 2);
    const ledger = join(dir, 'ha-ledger.txt');
    const runId = randomBytes(4).toString('hex');
    const JOBS = Number(process.env.HA_JOBS ?? 400);
    const acked = new Map<string, string>();
    const failed: string[] = [];
    let next = 0;
    const wake = new Set<() => void>();
    const untilAcked = async (n: number) => {
      while (acked.size + failed.length < n) await new Promise<void>((r) => wake.add(r));
    };
    const submitter = async () => {
      for (let slot = next++; slot < JOBS; slot = next++) {
        const job = `j${slot}`;
        try {
          const res = await retryUnary(
            (deadlineMs) =>
              client.runTask(
                { spec: { argv: jobArgv(ledger), env: { JOB: job, SLEEP: slot % 7 === 0 ? '1' : '0' }, resources: { millicpu: 10n, memoryBytes: 1n << 20n }, retries: 10 }, idempotencyKey: `ha-${runId}-${job}` },
                { deadlineMs },
              ),
            { totalMs: 60_000, attemptMs: 2000, initialDelayMs: 50, maxDelayMs: 500 },
          );
          acked.set(job, res.task!.id);
        } catch (err) {
          failed.push(`${job}: ${(err as Error).message}`);
        }
        for (const w of wake) w();
        wake.clear();
      }
    };
    const faults = async () => {
      await untilAcked(Math.round(JOBS * 0.25));
      const leader = managers.find((m) => /"msg":"management node ready"/.test(m.daemon.log()) && m.daemon.child.exitCode === null)!;
      const t0 = Date.now();
      await leader.daemon.kill9();
      const placed = acked.size;
      await untilAcked(placed + 1);
      failover.push(Date.now() - t0);
      await untilAcked(Math.round(JOBS * 0.6));
      await etcd.kill9(await etcd.leader());
    };
    const failover: number[] = [];
    await Promise.all([faults(), ...Array.from({ length: 8 }, submitter)]);
    expect(failed, 'jobs never acknowledged').to.deep.equal([]);
    const quiet = await waitQuiescent(client, 2, [], 90_000);
    const book = readLedger(ledger);
    const stored = new Map(quiet.tasks.map((t) => [t.id, t]));
    const lost = [...acked].filter(([job, id]) => !book.ends.has(job) && stored.get(id)?.state !== TaskState.DEAD).map(([job]) => job);
    const dead = [...acked].filter(([, id]) => stored.get(id)?.state === TaskState.DEAD).map(([job, id]) => `${job}: ${stored.get(id)!.deadReason}`);
    const twice = [...book.ends].filter(([, ends]) => ends.length > 1).map(([job]) => job);
    const unstored = [...new Set(book.marks.filter((m) => !stored.has(m.task)).map((m) => m.job))];
    console.log(`      failover (kill -9 of the leader → next task acknowledged): ${failover.join(', ')} ms; ${acked.size} acked, ${dead.length} dead, ${lost.length} lost, ${twice.length} run twice`);
    expect(lost, 'acknowledged and never run').to.deep.equal([]);
    expect(twice, 'run twice').to.deep.equal([]);
    expect(unstored, 'run but never stored').to.deep.equal([]);
    expect(dead, 'dead').to.deep.equal([]);
    await etcd.restart(etcd.members.find((m) => !m.running)!);
  });
});
