// What a task is told of itself in its environment (SCHED_TASK_ID, SCHED_ATTEMPT, and a
// group member's SCHED_GROUP_ID, SCHED_TASK_INDEX, SCHED_TASK_COUNT), and the checks on the
// group a StartTask names: pure, then through a worker session running a real process.
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Executor } from '../../worker-node/src/executor.js';
import { detectNodeInfo } from '../../worker-node/src/node-info.js';
import { Outbox } from '../../worker-node/src/outbox.js';
import { Session } from '../../worker-node/src/session.js';
import { checkGroup, taskEnv } from '../../worker-node/src/task-env.js';
import { FakeManager } from '../support/fake-manager.js';

const markers = { workerId: 'w', runId: 'r', taskId: 't-1', attempt: 3 };
const envLines = (tail: Uint8Array | undefined): Record<string, string> =>
  Object.fromEntries(
    Buffer.from(tail ?? [])
      .toString('utf8')
      .split('\n')
      .filter((l) => l.startsWith('SCHED_'))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );

describe('worker task environment', () => {
  it('every task: SCHED_TASK_ID and SCHED_ATTEMPT; no group variables outside a group', () => {
    const env = taskEnv({ PATH: '/bin' }, { MINE: '1' }, markers);
    expect(env).to.include({ SCHED_TASK_ID: 't-1', SCHED_ATTEMPT: '3', SCHED_TASK_ATTEMPT: '3', MINE: '1' });
    expect(env).to.not.have.any.keys('SCHED_GROUP_ID', 'SCHED_TASK_INDEX', 'SCHED_TASK_COUNT');
  });

  it('a group member: its group, index and count, over anything the task set itself', () => {
    const own = { SCHED_TASK_INDEX: 'forged', SCHED_ATTEMPT: 'forged' };
    const env = taskEnv({}, own, { ...markers, group: { id: 'g-1', index: 4, size: 12 } });
    expect(env).to.include({ SCHED_GROUP_ID: 'g-1', SCHED_TASK_INDEX: '4', SCHED_TASK_COUNT: '12', SCHED_ATTEMPT: '3' });
    // A group without a size (a schedule's): its id alone.
    const scheduled = taskEnv({}, {}, { ...markers, group: { id: 'nightly', index: 0, size: 0 } });
    expect(scheduled).to.include({ SCHED_GROUP_ID: 'nightly' }).and.not.have.any.keys('SCHED_TASK_INDEX', 'SCHED_TASK_COUNT');
  });

  const cases: Array<[string, { id: string; index: number; size: number }, RegExp | undefined]> = [
    ['no group', { id: '', index: 0, size: 0 }, undefined],
    ['a member', { id: '0b8c1a3e-5f2d-4c1e-9a7b-1234567890ab', index: 11, size: 12 }, undefined],
    ['an index past the size', { id: 'g', index: 12, size: 12 }, /group_index: 12 is not below group_size 12/],
    ['an index without a size', { id: 'g', index: 1, size: 0 }, /group_index/],
    ['a size without an id', { id: '', index: 0, size: 2 }, /group_size: set without group_id/],
    ['a newline in the id', { id: 'g\nX=1', index: 0, size: 2 }, /group_id/],
    ['a path for an id', { id: '../g', index: 0, size: 2 }, /group_id/],
    ['an id too long', { id: 'g'.repeat(129), index: 0, size: 2 }, /group_id/],
  ];
  for (const [name, group, want] of cases) {
    it(`checkGroup: ${name}`, () => {
      const got = checkGroup(group);
      if (want === undefined) expect(got).to.equal(undefined);
      else expect(got).to.match(want);
    });
  }
});

describe('worker task environment: through a session', function () {
  let dir: string;
  let executor: Executor;
  let outbox: Outbox;
  let session: Session;
  let manager: FakeManager;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'worker-task-env-'));
    executor = new Executor({ dataDir: dir, workerId: randomUUID() });
    outbox = new Outbox(dir);
    manager = new FakeManager();
    const port = await manager.listen(0);
    session = new Session({
      managers: [`127.0.0.1:${port}`],
      token: 'secret',
      workerId: 'w-env',
      node: detectNodeInfo({ labels: {} }),
      executor,
      outbox,
      logger: pino({ level: 'silent' }),
      reconnectIntervalMs: 100,
      cancelGraceMs: 1000,
    });
    session.start();
    await manager.next('hello');
    manager.send({ case: 'welcome', value: { sessionId: 's1', pingIntervalMs: 0 } });
  });
  afterEach(async () => {
    await session.stop('test over');
    await executor.stopAll(0);
    await outbox.flush();
    manager.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a group member the manager starts sees its place in the group', async () => {
    manager.send({
      case: 'startTask',
      value: { taskId: 'member-4', attempt: 2, spec: { argv: ['/usr/bin/env'] }, groupId: 'g-42', groupIndex: 4, groupSize: 12 },
    });
    const f = await manager.next('finished');
    expect(f.exitCode).to.equal(0);
    expect(envLines(f.stdoutTail)).to.include({
      SCHED_TASK_ID: 'member-4',
      SCHED_ATTEMPT: '2',
      SCHED_GROUP_ID: 'g-42',
      SCHED_TASK_INDEX: '4',
      SCHED_TASK_COUNT: '12',
    });
  });

  it('a lone task sees its id and attempt, and no group', async () => {
    manager.send({ case: 'startTask', value: { taskId: 'alone', attempt: 1, spec: { argv: ['/usr/bin/env'] } } });
    const f = await manager.next('finished');
    const env = envLines(f.stdoutTail);
    expect(env).to.include({ SCHED_TASK_ID: 'alone', SCHED_ATTEMPT: '1' });
    expect(env).to.not.have.any.keys('SCHED_GROUP_ID', 'SCHED_TASK_INDEX', 'SCHED_TASK_COUNT');
  });

  it('refuses an offer naming an impossible group, and runs nothing', async () => {
    manager.send({
      case: 'startTask',
      value: { taskId: 'bad', attempt: 1, spec: { argv: ['/usr/bin/env'] }, groupId: 'g', groupIndex: 7, groupSize: 3 },
    });
    expect((await manager.next('rejected')).reason).to.equal('group_index: 7 is not below group_size 3');
    expect(executor.get('bad')).to.equal(undefined);
  });
});
