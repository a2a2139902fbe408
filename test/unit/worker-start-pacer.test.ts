// The start pacer on its own: the first start of a turn runs at once, the rest one per turn
// after it, and what waits can be counted, taken out or cleared before it runs.
import { expect } from 'chai';
import { notStarted, StartPacer } from '../../worker-node/src/start-pacer.js';

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('worker start pacer', () => {
  it('runs the first start of a turn at once and the others one per turn, in order', async () => {
    const pacer = new StartPacer();
    const ran: string[] = [];
    const start = (taskId: string) => ({ taskId, attempt: 1, millicpu: 100, memoryBytes: 1024, run: () => ran.push(taskId) });
    expect(pacer.offer(start('a'))).to.equal(false);
    expect(pacer.offer(start('b'))).to.equal(true);
    expect(pacer.offer(start('c'))).to.equal(true);
    expect(ran).to.deep.equal(['a']);
    expect(pacer.size).to.equal(2);
    expect(pacer.refs()).to.deep.equal([{ taskId: 'b', attempt: 1 }, { taskId: 'c', attempt: 1 }]);
    expect(pacer.reserved({ millicpu: 50, memoryBytes: 1 })).to.deep.equal({ millicpu: 250, memoryBytes: 2049 });
    await turn();
    expect(ran).to.deep.equal(['a', 'b']);
    await turn();
    expect(ran).to.deep.equal(['a', 'b', 'c']);
    expect(pacer.size).to.equal(0);
  });

  it('a start taken out or cleared before its turn never runs', async () => {
    const pacer = new StartPacer();
    const ran: string[] = [];
    const start = (taskId: string, attempt = 1) => ({ taskId, attempt, millicpu: 0, memoryBytes: 0, run: () => ran.push(taskId) });
    pacer.offer(start('a'));
    pacer.offer(start('b'));
    pacer.offer(start('c'));
    expect(pacer.take('b', 2)).to.equal(undefined); // another attempt
    expect(pacer.take('b', 1)?.taskId).to.equal('b');
    expect(pacer.find('c')?.attempt).to.equal(1);
    expect(pacer.clear().map((s) => s.taskId)).to.deep.equal(['c']);
    await turn();
    await turn();
    expect(ran).to.deep.equal(['a']);
    expect(notStarted({ taskId: 'b', attempt: 1 }, 'SIGTERM', '')).to.include({ pid: 0, exitCode: 143, signal: 'SIGTERM' });
  });
});
