// The 3-member etcd cluster the high-availability fault tests run on: it
// replicates, elects a new leader after kill -9 of the old one, takes the
// killed member back with its data dir, refuses writes without quorum while
// two members are frozen, and close() leaves no process and no data dir.
import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { startEtcdCluster, type EtcdCluster, type EtcdMember } from '../support/etcd-cluster.js';

/** Whether pid names a process (a zombie counts: it has not been reaped). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

describe('support: etcd cluster', function () {
  // Each step is bounded by the cluster's own waits (15 s); this bounds the whole.
  this.timeout(60_000);

  let cluster: EtcdCluster | undefined;
  let killed: EtcdMember | undefined;
  let killedId = '';

  const c = () => {
    if (!cluster) throw new Error('cluster did not start');
    return cluster;
  };

  before(async function () {
    cluster = await startEtcdCluster();
  });

  after(async function () {
    await cluster?.close();
  });

  it('starts 3 members on distinct loopback ports with one leader', async () => {
    const { members, endpoints } = c();
    expect(members).to.have.length(3);
    expect(endpoints).to.deep.equal(members.map((m) => m.clientUrl));
    const urls = members.flatMap((m) => [m.clientUrl, m.peerUrl]);
    expect(new Set(urls).size).to.equal(6);
    for (const u of urls) expect(u).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
    for (const m of members) {
      expect(m.running, m.name).to.be.true;
      expect(m.pid, m.name).to.be.a('number');
      expect(m.id, m.name).to.match(/^\d+$/);
    }
    const leader = await c().leader();
    expect(members).to.include(leader);
  });

  it('replicates a write through one member to a read through another', async () => {
    const [a, b, third] = c().members as [EtcdMember, EtcdMember, EtcdMember];
    await c().client(a).put('repl/k').value('v1');
    expect(await c().client(b).get('repl/k').string()).to.equal('v1');
    expect(await c().client(third).get('repl/k').string()).to.equal('v1');
  });

  it('elects a new leader among the others after kill -9 of the leader, and writes still succeed', async () => {
    const old = await c().leader();
    const pid = old.pid!;
    killed = old;
    killedId = old.id;
    const t0 = Date.now();
    await c().kill9(old);
    expect(old.running).to.be.false;
    expect(old.pid).to.equal(undefined);
    expect(alive(pid), `pid ${pid} after kill9`).to.be.false;

    const next = await c().leader();
    const electedMs = Date.now() - t0;
    expect(next).to.not.equal(old);
    expect(next.running).to.be.true;
    const others = c().members.filter((m) => m !== old);
    await c().client(others).put('ha/after-kill').value('v2');
    expect(await c().client(others[0]!).get('ha/after-kill').string()).to.equal('v2');
    expect(await c().client(others[1]!).get('ha/after-kill').string()).to.equal('v2');
    await c().waitHealthy();
    expect(electedMs, 'new leader within').to.be.below(15_000);
  });

  it('restarts the killed member on its data dir; it rejoins as itself and catches up', async () => {
    const m = killed!;
    const running = c().members.find((x) => x.running)!;
    let refused: unknown;
    try {
      await c().restart(running);
    } catch (err) {
      refused = err;
    }
    expect(String(refused)).to.match(/still running/);

    await c().restart(m);
    expect(m.running).to.be.true;
    expect(m.id, 'same member ID').to.equal(killedId);
    // A linearizable read through it: it is connected to the leader and has the write made while it was down.
    expect(await c().client(m).get('ha/after-kill').string()).to.equal('v2');
    const status = await c().client(m).maintenance.status();
    expect(String(status.header.member_id)).to.equal(killedId);
    // etcd read its WAL rather than bootstrapping a new member.
    expect(c().log(m)).to.include('restarting local member');
    expect(c().log(m)).to.not.include('"msg":"starting local member"');
    await c().waitHealthy();
  });

  it('refuses a write without quorum while two members are frozen, and takes writes again after SIGCONT', async () => {
    const leader = await c().leader();
    const follower = c().members.find((m) => m !== leader)!;
    const last = c().members.find((m) => m !== leader && m !== follower)!;
    const client = c().client(last, { callTimeoutMs: 1500 });
    await client.put('quorum/before').value('1');

    await c().stop(leader);
    await c().stop(follower);
    expect(leader.frozen && follower.frozen).to.be.true;
    expect(leader.running, 'frozen is still running').to.be.true;
    const t0 = Date.now();
    let failed: unknown;
    try {
      await client.put('quorum/during').value('2');
    } catch (err) {
      failed = err;
    }
    expect(failed, 'write without quorum').to.be.instanceOf(Error);
    expect(Date.now() - t0, 'failed within its deadline').to.be.below(5000);

    await c().cont(leader);
    await c().cont(follower);
    expect(leader.frozen || follower.frozen).to.be.false;
    await c().waitHealthy();
    await c().client(c().members, { callTimeoutMs: 5000 }).put('quorum/after').value('3');
    for (const m of c().members) expect(await c().client(m).get('quorum/after').string(), m.name).to.equal('3');
  });

  it('close() leaves no process and no data dir, even with a member frozen', async () => {
    const cl = c();
    await cl.stop(cl.members[1]!);
    const pids = cl.members.map((m) => m.pid!);
    expect(pids.every((p) => typeof p === 'number')).to.be.true;
    expect(existsSync(cl.dir)).to.be.true;
    await cl.close();
    for (const p of pids) expect(alive(p), `pid ${p}`).to.be.false;
    for (const m of cl.members) expect(m.running, m.name).to.be.false;
    expect(existsSync(cl.dir)).to.be.false;
    await cl.close(); // idempotent
  });
});
