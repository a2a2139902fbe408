import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Executor } from '../../worker-node/src/executor.js';
import { ClientPool, ManagerList, MAX_LEADER_FOLLOWS, type NextDial } from '../../worker-node/src/manager-list.js';
import { detectNodeInfo } from '../../worker-node/src/node-info.js';
import { Outbox } from '../../worker-node/src/outbox.js';
import { FakeManager } from '../support/fake-manager.js';
import { Session, type SessionOptions } from '../../worker-node/src/session.js';

describe('worker manager list', () => {
  const at = (address: string, pause = false): NextDial => ({ address, pause });

  it('starts with the first address and moves round robin, pausing only once a whole round has failed', () => {
    const list = new ManagerList(['a:1', 'b:1', 'c:1']);
    expect(list.current).to.equal('a:1');
    expect(list.failed()).to.deep.equal(at('b:1'));
    expect(list.failed()).to.deep.equal(at('c:1'));
    expect(list.failed()).to.deep.equal(at('a:1', true));
    // After the pause a new round: again two at once, then a pause.
    expect(list.failed()).to.deep.equal(at('b:1'));
    expect(list.failed()).to.deep.equal(at('c:1'));
    expect(list.failed()).to.deep.equal(at('a:1', true));
  });

  it('with one address, every failure pauses (the backoff of a single manager)', () => {
    const list = new ManagerList(['m:1']);
    for (let i = 0; i < 3; i++) expect(list.failed()).to.deep.equal(at('m:1', true));
    expect(list.failed({ welcomed: true })).to.deep.equal(at('m:1', true));
  });

  it('follows a leader hint at once, also to an address not in the list, and goes on round robin when the leader fails', () => {
    const list = new ManagerList(['a:1', 'b:1', 'c:1']);
    expect(list.failed({ leader: 'l:9', notLeader: true })).to.deep.equal({
      address: 'l:9',
      pause: false,
      following: { leader: 'l:9', refusedBy: 'a:1' },
    });
    expect(list.current).to.equal('l:9');
    // The leader is unreachable: on with the list after the one that named it.
    expect(list.failed()).to.deep.equal(at('b:1'));
    expect(list.failed()).to.deep.equal(at('c:1'));
    // a:1 refused already in this round: c:1's failure completes it.
    expect(list.failed()).to.deep.equal(at('a:1', true));
  });

  it('ignores a hint naming the refusing manager itself', () => {
    const list = new ManagerList(['a:1', 'b:1']);
    expect(list.failed({ leader: 'a:1', notLeader: true })).to.deep.equal(at('b:1'));
  });

  it(`follows at most ${MAX_LEADER_FOLLOWS} hints in a row: two managers naming each other get a pause every few dials`, () => {
    const list = new ManagerList(['a:1', 'b:1']);
    const dials: string[] = [list.current];
    let pauses = 0;
    for (let i = 0; i < 40; i++) {
      const other = list.current === 'a:1' ? 'b:1' : 'a:1';
      const next = list.failed({ leader: other, notLeader: true });
      if (next.pause) {
        pauses++;
        dials.push('|');
      }
      dials.push(next.address);
    }
    // Each pause is preceded by MAX_LEADER_FOLLOWS followed hints and one refusal taken as a plain failure.
    expect(dials.join(' ').split(' | ').slice(0, 3)).to.deep.equal(['a:1 b:1 a:1 b:1', 'a:1 b:1 a:1 b:1', 'a:1 b:1 a:1 b:1']);
    expect(pauses).to.equal(10);
  });

  it('after a Welcome the address stays first: a lost stream pauses and redials it; rounds start over', () => {
    const list = new ManagerList(['a:1', 'b:1', 'c:1']);
    expect(list.failed()).to.deep.equal(at('b:1'));
    list.welcomed();
    expect(list.failed({ welcomed: true })).to.deep.equal(at('b:1', true));
    expect(list.failed()).to.deep.equal(at('c:1'));
    expect(list.failed()).to.deep.equal(at('a:1'));
    expect(list.failed()).to.deep.equal(at('b:1', true));
  });

  it('a leader named by a hint and welcomed is dialled first after the next loss, though not in the list', () => {
    const list = new ManagerList(['a:1', 'b:1']);
    list.failed({ leader: 'l:9', notLeader: true });
    list.welcomed();
    expect(list.failed({ welcomed: true })).to.deep.equal(at('l:9', true));
    expect(list.failed()).to.deep.equal(at('b:1'));
  });

  it('a leader that steps down goes to the leader it names at once, or to the next address when it names none', () => {
    const list = new ManagerList(['a:1', 'b:1']);
    list.welcomed();
    expect(list.failed({ welcomed: true, notLeader: true, leader: 'b:1' })).to.deep.include({ address: 'b:1', pause: false });
    list.welcomed();
    expect(list.failed({ welcomed: true, notLeader: true })).to.deep.equal(at('a:1'));
  });

  it('keeps one client per address, made on first use, few for addresses not in the list, and closes them all', () => {
    const made: string[] = [];
    const closed: string[] = [];
    const pool = new ClientPool((a) => (made.push(a), { a, close: () => void closed.push(a) }), ['a:1', 'b:1'], 2);
    expect(pool.size).to.equal(0);
    expect(pool.get('a:1')).to.equal(pool.get('a:1'));
    pool.get('b:1');
    for (const extra of ['x:1', 'y:1', 'z:1']) pool.get(extra);
    expect(made).to.deep.equal(['a:1', 'b:1', 'x:1', 'y:1', 'z:1']);
    expect(closed).to.deep.equal(['x:1']);
    expect(pool.size).to.equal(4);
    pool.closeAll();
    expect(closed.sort()).to.deep.equal(['a:1', 'b:1', 'x:1', 'y:1', 'z:1']);
    expect(pool.size).to.equal(0);
  });
});


describe('worker session with several managers', function () {
  let dir: string;
  let executor: Executor;
  let outbox: Outbox;
  let session: Session | undefined;
  const fakes: FakeManager[] = [];
  /** The address of every Connect any fake manager saw, in order. */
  let connects: string[];
  /** Every backoff pause the session took: [failures, connects so far]. */
  let pauses: [number, number][];
  /** The cap (maxMs) each pause was given. */
  let caps: number[];
  let lines: string[];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'worker-managers-'));
    executor = new Executor({ dataDir: dir, workerId: randomUUID() });
    outbox = new Outbox(dir);
    connects = [];
    pauses = [];
    caps = [];
    lines = [];
  });
  afterEach(async () => {
    await session?.stop('test over');
    session = undefined;
    await executor.stopAll(0);
    await outbox.flush();
    for (const m of fakes.splice(0)) m.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function manager(follower?: string): Promise<FakeManager> {
    const m = new FakeManager(connects, follower);
    fakes.push(m);
    await m.listen();
    return m;
  }

  /** A port nothing listens on (a manager that is down). */
  async function deadAddress(): Promise<string> {
    const m = new FakeManager([]);
    await m.listen();
    const address = m.address;
    m.stop();
    return address;
  }

  function start(managers: string[], extra: Partial<SessionOptions> = {}): Session {
    session = new Session({
      managers,
      token: 'secret',
      workerId: 'w-1',
      node: detectNodeInfo({ labels: {} }),
      executor,
      outbox,
      logger: pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) }),
      // A pause of this scale would time the test out: the paths that must not pause are seen not to.
      reconnectIntervalMs: 60_000,
      reconnectMaxMs: 60_000,
      cancelGraceMs: 1000,
      redialDelay: (failures, _baseMs, maxMs) => {
        pauses.push([failures, connects.length]);
        caps.push(maxMs);
        return 10;
      },
      ...extra,
    });
    session.start();
    return session;
  }

  const messages = () => lines.map((l) => (JSON.parse(l) as { msg: string }).msg);

  it('skips a follower and a dead manager in front of the leader without a backoff pause', async () => {
    const leader = await manager();
    const follower = await manager(''); // knows no leader yet
    const dead = await deadAddress();
    start([dead, follower.address, leader.address]);
    await leader.next('hello');
    expect(connects).to.deep.equal([follower.address, leader.address]);
    expect(pauses).to.deep.equal([]);
    leader.send({ case: 'welcome', value: { sessionId: 's1', pingIntervalMs: 0 } });
    leader.send({ case: 'ping', value: { seq: 1n } });
    await leader.next('pong');
    expect(session!.connected).to.equal(true);
    expect(messages()).to.include(`connected to manager at ${leader.address}`);
  });

  it('goes to the leader a follower names, at once', async () => {
    const leader = await manager();
    const follower = await manager(leader.address);
    start([follower.address, leader.address]);
    await leader.next('hello');
    expect(connects).to.deep.equal([follower.address, leader.address]);
    expect(pauses).to.deep.equal([]);
    expect(messages()).to.include(`following the leader at ${leader.address} (${follower.address} is not the leader)`);
  });

  it('follows the leader a follower names though it is not in the list, and is welcomed there', async () => {
    const leader = await manager();
    const follower = await manager(leader.address);
    start([follower.address]);
    await leader.next('hello');
    expect(connects).to.deep.equal([follower.address, leader.address]);
    leader.send({ case: 'welcome', value: { sessionId: 's1', pingIntervalMs: 0 } });
    leader.send({ case: 'ping', value: { seq: 1n } });
    await leader.next('pong');
    expect(pauses).to.deep.equal([]);
    expect(messages()).to.include.members([
      `following the leader at ${leader.address} (${follower.address} is not the leader)`,
      `connected to manager at ${leader.address}`,
    ]);
    // A refusal naming the leader is no outage: nothing to warn about.
    expect(lines.filter((l) => l.includes('"level":40'))).to.deep.equal([]);
  });

  it('when the leader goes, says Hello to the next leader with its running task and resends unacknowledged results', async () => {
    const first = await manager();
    const second = await manager(first.address);
    start([first.address, second.address], { reconnectIntervalMs: 100 });
    await first.next('hello');
    first.send({ case: 'welcome', value: { sessionId: 's1', pingIntervalMs: 0 } });
    first.send({ case: 'startTask', value: { taskId: 'long', attempt: 1, spec: { argv: ['sleep', '30'] } } });
    await first.next('started');
    // A result the leader gets but does not acknowledge before it dies.
    first.send({ case: 'startTask', value: { taskId: 'quick', attempt: 1, spec: { argv: ['sh', '-c', 'exit 5'] } } });
    expect((await first.next('finished')).exitCode).to.equal(5);
    // The leader dies and the follower is elected.
    second.follower = undefined;
    first.stop();
    const hello = await second.next('hello');
    expect(hello.running.map((t) => `${t.taskId}:${t.attempt}`)).to.deep.equal(['long:1']);
    expect(second.received.filter((m) => m.msg.case === 'finished')).to.deep.equal([]); // not before Welcome
    second.send({ case: 'welcome', value: { sessionId: 's2', pingIntervalMs: 0 } });
    const resent = await second.next('finished');
    expect(resent.task).to.deep.include({ taskId: 'quick', attempt: 1 });
    expect(resent.exitCode).to.equal(5);
    second.send({ case: 'finishedAck', value: { task: { taskId: 'quick', attempt: 1 } } });
    second.send({ case: 'ping', value: { seq: 1n } });
    expect(await second.next('pong')).to.deep.include({ seq: 1n, runningTasks: 1 });
    expect(session!.unacknowledged).to.equal(0);
    // One pause (the base, after the welcomed stream broke); the dead leader in front cost none.
    expect(pauses.map(([failures]) => failures)).to.deep.equal([0]);
    expect(connects).to.deep.equal([first.address, second.address]);
    expect(messages()).to.include(`connected to manager at ${second.address}`);
    expect(messages().filter((m) => m.startsWith(`lost connection to manager at ${first.address}`))).to.not.deep.equal([]);
  });

  it('counts the orphan timeout across all managers: refusals are no contact, and the tasks die; reported lost to the next leader', async () => {
    const first = await manager();
    const second = await manager(first.address); // names the old leader long after it died
    const third = await manager(); // the next leader, not in the worker's list
    start([first.address, second.address]);
    await first.next('hello');
    first.send({ case: 'welcome', value: { sessionId: 's1', pingIntervalMs: 0, orphanTimeoutMs: 600 } });
    first.send({ case: 'startTask', value: { taskId: 'orphan', attempt: 1, spec: { argv: ['sleep', '30'] } } });
    await first.next('started');
    const waited = executor.wait('orphan', 1);
    first.stop();
    const r = (await waited)!;
    expect(r).to.include({ lost: true, signal: 'SIGKILL' });
    expect(r.error).to.match(/^worker lost the manager: nothing heard for \d+ms \(orphan timeout 600ms\); task killed$/);
    expect(connects.filter((a) => a === second.address).length).to.be.at.least(1);
    // Every pause in the outage was capped at a quarter of the orphan timeout.
    expect(caps.length).to.be.at.least(1);
    expect(new Set(caps)).to.deep.equal(new Set([150]));
    // A new leader is elected: the follower names it (a dial racing the kill is refused and follows it too).
    second.follower = third.address;
    expect((await third.next('hello')).running).to.deep.equal([]);
    third.send({ case: 'welcome', value: { sessionId: 's2', pingIntervalMs: 0, orphanTimeoutMs: 600 } });
    expect((await third.next('finished')).task).to.deep.include({ taskId: 'orphan', attempt: 1 });
  });

  it('two followers naming each other do not make a hot loop: a backoff pause every few dials, growing', async () => {
    const a = await manager();
    const b = await manager(a.address);
    a.follower = b.address;
    start([a.address, b.address]);
    await waitUntil(() => pauses.length >= 4);
    // Each pause follows MAX_LEADER_FOLLOWS hints followed and one refusal taken as a failure; the exponent grows.
    const per = MAX_LEADER_FOLLOWS + 1;
    expect(pauses.slice(0, 4)).to.deep.equal([
      [0, per],
      [1, 2 * per],
      [2, 3 * per],
      [3, 4 * per],
    ]);
    expect(connects.slice(0, per)).to.deep.equal([a.address, b.address, a.address, b.address]);
    expect(session!.connected).to.equal(false);
  });
});

async function waitUntil(check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
