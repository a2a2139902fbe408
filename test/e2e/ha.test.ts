// High availability with the real binaries on a real 3-member etcd cluster on
// loopback: several managers, one leader (an etcd lease), fenced writes,
// followers that name the leader, and failover with nothing lost or run twice.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { leaderHint } from '../../common/errors.js';
import { createManagerClient } from '../../common/manager-client.js';
import { createServiceClient } from '../../common/grpc-service.js';
import { ManagementService } from '../../proto/gen/schedapi/v1/management_pb.js';
import { TaskState, WorkerState } from '../../proto/gen/schedapi/v1/types_pb.js';
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
    if (!process.env.KEEP_HA_DIR) rmSync(dir, { recursive: true, force: true });
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

  // These tests are about managers, under bursts of hundreds of tiny jobs on two workers. Their
  // workers run without cgroups: a cgroup v1 join is five migrations, each waiting out an RCU grace
  // period that also holds up every fork on the machine, which next to another e2e file made each
  // spawn take 100-300 ms and let offers pass their ack timeout. What cgroups cost per task is
  // measured by the bench (BENCH_WORKER_CONFIG); isolation.test.ts and fault-recovery use them.
  function startWorker(name: string, managers: Manager[]): Daemon {
    const yaml = writeYaml(
      join(dir, `${name}.yaml`),
      `managers: [${managers.map((m) => m.address).join(', ')}]\ndata_dir: ${join(dir, name)}\nreconnect_interval: 100ms\nreconnect_max: 1s\ncapacity: {cpu: 8, memory: 8Gi}\nlog_level: info\ncgroups: off\n`,
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
      // A follower learns who leads a moment after it listens.
      await waitFor('the follower to know the leader', async () => (await direct.status({})).leader === leader!.address);
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

  it('a manager starts and leads while the first etcd member it lists is down', async () => {
    const first = etcd.members[0]!;
    await etcd.kill9(first);
    try {
      // The dead member first in the list: the client moves on to the others at once.
      const [leader] = await startManagers(1);
      const c = clientOf([leader!]);
      // Each store call picks a member at random: without failing over, about one in three would fail.
      for (let i = 0; i < 20; i++) {
        const { task } = await c.runTask({ spec: { argv: ['true'] } }, { deadlineMs: 5000 });
        expect(task!.state).to.equal(TaskState.PENDING);
      }
      expect((await c.status({})).role).to.equal('leader');
    } finally {
      await etcd.restart(first);
      await etcd.waitHealthy();
    }
  });

  it('schedctl with every manager listed names the leader, and --wait and logs -f carry on across a failover', async () => {
    const managers = await startManagers(3);
    await withWorkers(managers, 'ctl');
    const env = { ...process.env, SCHED_MANAGER: managers.map((m) => m.address).reverse().join(','), SCHEDCTL_CONFIG: '' };
    const ctl = (...args: string[]) => run(BIN.schedctl, args, { env, timeoutMs: 90_000 });
    const leader = await leaderOf(managers);
    const status = await ctl('status');
    expect(status.code, status.stderr).to.equal(0);
    expect(status.stdout).to.match(new RegExp(`Leader:\\s+${leader.address.replace(/\./g, '\\.')}`));
    expect(status.stdout).to.match(/Role:\s+leader/);
    // A task that prints a line a second for 8 s, waited for and followed by two clients while the leader dies.
    const script = 'for i in 1 2 3 4 5 6 7 8; do echo line $i; sleep 1; done; exit 7';
    const submitted = await ctl('tasks', 'run', '--', 'sh', '-c', script);
    expect(submitted.code, submitted.stderr).to.equal(0);
    const id = submitted.stdout.trim();
    const client = clientOf(managers);
    await waitFor('the task running', async () => (await client.getTask({ id }, { deadlineMs: 2000 })).task!.state === TaskState.SCHEDULED);
    const wait = run(BIN.schedctl, ['tasks', 'run', '--wait', '--', 'sh', '-c', 'sleep 6; exit 3'], { env, timeoutMs: 90_000 });
    const logs = ctl('tasks', 'logs', '-f', id);
    const logFile = (w: string) => join(dir, w, 'logs', `${id}.1.stdout`);
    const written = () => ['w-ctl-a', 'w-ctl-b'].map((w) => (existsSync(logFile(w)) ? readFileSync(logFile(w), 'utf8') : '')).join('');
    await waitFor('the task to have written two lines', () => written().includes('line 2'));
    await leader.daemon.kill9();
    const [w, l] = await Promise.all([wait, logs]);
    expect(w.code, w.stderr).to.equal(3);
    expect(l.code, l.stderr).to.equal(0);
    expect(l.stdout).to.equal([1, 2, 3, 4, 5, 6, 7, 8].map((i) => `line ${i}\n`).join(''));
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

  interface Load {
    acked: Map<string, string>;
    /** Submissions given up, with their last error. */
    failed: string[];
    /** Errors of attempts that were retried (what clients saw during the faults). */
    seen: grpc.ServiceError[];
    untilAcked(n: number): Promise<void>;
  }

  /**
   * Submits `jobs` ledger jobs from 8 clients (each with its idempotency key and
   * schedctl's retry loop) while `faults` runs, then waits for quiescence and
   * checks from the ledger and the store: nothing acknowledged is lost, nothing
   * runs twice, nothing runs unstored, nothing is dead.
   */
  async function underLoad(managers: Manager[], jobs: number, faults: (load: Load) => Promise<void>): Promise<Load> {
    const client = clientOf(managers);
    const ledger = join(dir, `ledger-${randomBytes(3).toString('hex')}.txt`);
    const runId = randomBytes(4).toString('hex');
    const wake = new Set<() => void>();
    const load: Load = {
      acked: new Map(),
      failed: [],
      seen: [],
      untilAcked: async (n) => {
        while (load.acked.size + load.failed.length < n) await new Promise<void>((r) => wake.add(r));
      },
    };
    let next = 0;
    const submitter = async () => {
      for (let slot = next++; slot < jobs; slot = next++) {
        const job = `j${slot}`;
        try {
          const spec = { argv: jobArgv(ledger), env: { JOB: job, SLEEP: slot % 7 === 0 ? '1' : '0' }, resources: { millicpu: 10n, memoryBytes: 1n << 20n }, retries: 10 };
          const res = await retryUnary((deadlineMs) => client.runTask({ spec, idempotencyKey: `ha-${runId}-${job}` }, { deadlineMs }), {
            totalMs: 90_000,
            attemptMs: 2000,
            initialDelayMs: 50,
            maxDelayMs: 500,
            onRetry: (err) => load.seen.push(err as grpc.ServiceError),
          });
          load.acked.set(job, res.task!.id);
        } catch (err) {
          load.failed.push(`${job}: ${(err as Error).message}`);
        }
        for (const w of wake) w();
        wake.clear();
      }
    };
    await Promise.all([faults(load), ...Array.from({ length: 8 }, submitter)]);
    expect(load.failed, 'jobs never acknowledged').to.deep.equal([]);
    const quiet = await waitQuiescent(client, 2, [], 90_000);
    const book = readLedger(ledger);
    const stored = new Map(quiet.tasks.map((t) => [t.id, t]));
    const lost = [...load.acked]
      .filter(([job, id]) => !book.ends.has(job) && stored.get(id)?.state !== TaskState.DEAD)
      .map(([job, id]) => {
        const t = stored.get(id);
        const starts = book.marks.filter((m) => m.job === job && m.kind === 'S').map((m) => `${m.task}.${m.attempt}`);
        return `${job} ${id}: ${t ? `${TaskState[t.state]} attempt ${t.attempt} exit ${t.exitCode} ${t.signal} ${t.error}` : 'not stored'}; started ${starts.join(' ') || 'never'}`;
      });
    const dead = [...load.acked].filter(([, id]) => stored.get(id)?.state === TaskState.DEAD).map(([job, id]) => `${job}: ${stored.get(id)!.deadReason}`);
    const twice = [...book.ends].filter(([, ends]) => ends.length > 1).map(([job, ends]) => `${job}: ${ends.map((e) => `${e.task}.${e.attempt} (worker pid ${e.ppid})`).join(' ')}`);
    const unstored = [...new Set(book.marks.filter((m) => !stored.has(m.task)).map((m) => m.job))];
    expect(lost, 'acknowledged and never run').to.deep.equal([]);
    expect(twice, `run twice (${twice.length}): ${twice.slice(0, 5).join('; ')}`).to.deep.equal([]);
    expect(unstored, 'run but never stored').to.deep.equal([]);
    expect(dead, 'dead').to.deep.equal([]);
    return load;
  }

  /** Starts a stopped manager again with its config and port (as a supervisor would), in its place in managers. */
  async function restartManager(managers: Manager[], m: Manager): Promise<void> {
    const yamlFile = join(dir, `m${prefix}-${m.n}.yaml`);
    const config = readFileSync(yamlFile, 'utf8').replace(/^listen: .*\n/m, '');
    const again = await startManager({ config, yamlFile, logFile: join(dir, `m${prefix}-${m.n}-again.log`), port: Number(m.address.split(':')[1]), until: 'listening' });
    daemons.push(again.daemon);
    managers[managers.indexOf(m)] = { ...m, daemon: again.daemon };
  }

  const leaderOf = (managers: Manager[]) => waitFor('a leader', () => managers.find((m) => m.daemon.child.exitCode === null && /"msg":"management node ready"/.test(m.daemon.log())), 30_000);

  async function withWorkers(managers: Manager[], tag: string): Promise<void> {
    startWorker(`w-${tag}-a`, managers);
    startWorker(`w-${tag}-b`, managers);
    const client = clientOf(managers);
    await waitFor('two workers connected', async () => (await client.listWorkers({}, { deadlineMs: 2000 })).workers.filter((w) => w.state === WorkerState.CONNECTED).length === 2);
  }

  it('kill -9 of the leader, then of the etcd leader, under load: every acknowledged task runs exactly once', async () => {
    const managers = await startManagers(3);
    await withWorkers(managers, 'kill');
    const JOBS = Number(process.env.HA_JOBS ?? 250);
    const failover: number[] = [];
    const load = await underLoad(managers, JOBS, async (l) => {
      await l.untilAcked(Math.round(JOBS * 0.25));
      const leader = await leaderOf(managers);
      const t0 = Date.now();
      await leader.daemon.kill9();
      await l.untilAcked(l.acked.size + 1);
      failover.push(Date.now() - t0);
      await l.untilAcked(Math.round(JOBS * 0.6));
      await etcd.kill9(await etcd.leader());
    });
    console.log(`      failover (kill -9 of the leader → next task acknowledged): ${failover.join(', ')} ms; ${load.acked.size} acknowledged, none lost or run twice`);
    await etcd.restart(etcd.members.find((m) => !m.running)!);
    await etcd.waitHealthy();
  });

  it('a rolling restart of every manager under load loses nothing and runs nothing twice', async () => {
    const managers = await startManagers(3);
    await withWorkers(managers, 'roll');
    const JOBS = Number(process.env.HA_JOBS ?? 250);
    await underLoad(managers, JOBS, async (l) => {
      for (const [i, m] of [...managers].entries()) {
        await l.untilAcked(Math.round((JOBS * (i + 1)) / 5));
        // SIGTERM: a leader hands over at once (it revokes its lease); then it starts again on its port.
        await m.daemon.stop();
        await restartManager(managers, m);
      }
    });
  });

  it('without an etcd quorum, writes stop with clear errors and nothing unstored is acknowledged; all resumes with the quorum', async () => {
    const managers = await startManagers(3);
    await withWorkers(managers, 'quorum');
    const JOBS = Number(process.env.HA_JOBS ?? 200);
    const load = await underLoad(managers, JOBS, async (l) => {
      await l.untilAcked(Math.round(JOBS * 0.3));
      const [a, b] = etcd.members;
      await etcd.stop(a!);
      await etcd.stop(b!);
      const before = l.seen.length;
      await waitFor('submissions to fail while etcd has no quorum', () => l.seen.length >= before + 5, 30_000, 20);
      await etcd.cont(a!);
      await etcd.cont(b!);
      await etcd.waitHealthy();
      // A leader that could not renew its lease meanwhile stepped down (exit 3): its supervisor would start it again.
      for (const m of managers) {
        if (m.daemon.child.exitCode === null) continue;
        expect(m.daemon.child.exitCode, m.daemon.log().slice(-2000)).to.equal(3);
        await restartManager(managers, m);
      }
    });
    // What clients were told meanwhile: the store or the leader is unavailable, or the call ran out of time; never a wrong answer.
    const codes = new Set(load.seen.map((e) => grpc.status[e.code]));
    expect([...codes].filter((c) => c !== 'UNAVAILABLE' && c !== 'DEADLINE_EXCEEDED')).to.deep.equal([]);
    expect(load.seen.some((e) => /store unavailable|no leading manager answered|not the leader/.test(e.details ?? ''))).to.equal(true);
  });
});
