import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Executor, REAPED_ERROR, TAIL_BYTES, TASK_ID_ENV, WORKER_ENV, type FinishedEvent, type StartedEvent } from '../../worker-node/src/executor.js';

// A killed grandchild is re-parented to init, which may reap it late; a
// zombie runs nothing, so it counts as gone.
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc: trust kill(0)
  }
};

async function until(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('worker executor', function () {
  let dir: string;
  let executor: Executor;
  // Unique per run: orphan reaping finds processes by this id, and other test runs may share the machine.
  const workerId = randomUUID();
  const pids: number[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'worker-exec-'));
    executor = new Executor({ dataDir: dir, workerId });
  });
  afterEach(async () => {
    await executor.stopAll(0);
    for (const pid of pids.splice(0)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  async function run(taskId: string, argv: string[], extra: { env?: Record<string, string>; cwd?: string } = {}): Promise<FinishedEvent> {
    expect(executor.start(taskId, 1, { argv, ...extra })).to.equal('started');
    const result = await executor.wait(taskId, 1);
    expect(result).to.not.equal(undefined);
    return result!;
  }

  it('records the exit code, the output tails and the started event', async () => {
    const started: StartedEvent[] = [];
    executor.on('started', (e) => started.push(e));
    const r = await run('t1', ['sh', '-c', 'echo out; echo err >&2; echo "$FOO"; pwd; exit 7'], { env: { FOO: 'bar' }, cwd: dir });
    expect(r.exitCode).to.equal(7);
    expect(r.signal).to.equal('');
    expect(r.error).to.equal('');
    expect(Buffer.from(r.stdoutTail).toString()).to.equal(`out\nbar\n${dir}\n`);
    expect(Buffer.from(r.stderrTail).toString()).to.equal('err\n');
    expect(started).to.have.length(1);
    expect(started[0]!.pid).to.equal(r.pid);
    expect(r.finishedUnixMs).to.be.at.least(r.startedUnixMs);
    expect(executor.running()).to.deep.equal([]);
  });

  it('keeps only the last bytes of long output, read from the file', async () => {
    const r = await run('t2', ['sh', '-c', 'i=0; while [ $i -lt 2000 ]; do echo "line $i"; i=$((i+1)); done']);
    expect(r.exitCode).to.equal(0);
    expect(r.stdoutTail.length).to.equal(TAIL_BYTES);
    expect(Buffer.from(r.stdoutTail).toString().endsWith('line 1999\n')).to.equal(true);
  });

  it('reports a signal when a cancelled task dies of SIGTERM', async () => {
    expect(executor.start('t3', 1, { argv: ['sleep', '30'] })).to.equal('started');
    pids.push(executor.get('t3')!.pid);
    expect(executor.running()).to.deep.equal([{ taskId: 't3', attempt: 1 }]);
    expect(executor.start('t3', 1, { argv: ['sleep', '30'] })).to.equal('duplicate');
    expect(executor.start('t3', 2, { argv: ['sleep', '30'] })).to.equal('busy');
    expect(executor.cancel('t3', 2, 1000)).to.equal(false);
    expect(executor.cancel('t3', 1, 5000)).to.equal(true);
    const r = (await executor.wait('t3', 1))!;
    expect(r.signal).to.equal('SIGTERM');
    expect(r.exitCode).to.equal(143);
  });

  it('SIGKILLs a task that ignores SIGTERM after the grace', async () => {
    expect(executor.start('t4', 1, { argv: ['sh', '-c', "trap '' TERM; echo ready; sleep 30"] })).to.equal('started');
    pids.push(executor.get('t4')!.pid);
    await new Promise((r) => setTimeout(r, 200)); // let the trap be installed
    const t0 = Date.now();
    executor.cancel('t4', 1, 300);
    const r = (await executor.wait('t4', 1))!;
    expect(r.signal).to.equal('SIGKILL');
    expect(r.exitCode).to.equal(137);
    expect(Date.now() - t0).to.be.within(250, 3000);
  });

  it('kills grandchildren with the process group on cancel', async () => {
    executor.start('t5', 1, { argv: ['sh', '-c', 'sleep 30 & echo $!; sleep 30 & echo $!; wait'] });
    pids.push(executor.get('t5')!.pid);
    const out = executor.logPaths('t5', 1).stdout;
    let children: number[] = [];
    await until(() => {
      children = readLines(out).map(Number).filter((n) => n > 0);
      return children.length === 2;
    });
    pids.push(...children);
    expect(children.every(alive)).to.equal(true);
    executor.cancel('t5', 1, 5000);
    const r = (await executor.wait('t5', 1))!;
    expect(r.signal).to.equal('SIGTERM');
    await until(() => !children.some(alive));
  });

  it('kills what a task left in its group when the task exits', async () => {
    const r = await run('t6', ['sh', '-c', 'sleep 30 & echo $!']);
    const child = Number(Buffer.from(r.stdoutTail).toString().trim());
    pids.push(child);
    expect(r.exitCode).to.equal(0);
    await until(() => !alive(child));
  });

  it('reports a missing command as an error with exit code 127, and a non-executable one with 126', async () => {
    const r = await run('t7', ['/nonexistent/command', 'x']);
    expect(r.error).to.equal('spawn /nonexistent/command ENOENT');
    expect(r.exitCode).to.equal(127);
    expect(r.pid).to.equal(0);
    const script = join(dir, 'not-executable');
    writeFileSync(script, '#!/bin/sh\n');
    chmodSync(script, 0o644);
    const r2 = await run('t8', [script]);
    expect(r2.error).to.match(/EACCES/);
    expect(r2.exitCode).to.equal(126);
    const r3 = await run('t9', ['true'], { cwd: join(dir, 'missing') });
    expect(r3.error).to.match(/ENOENT.*cwd/);
    expect(executor.running()).to.deep.equal([]);
  });

  it('kills the processes a crashed worker left behind, only its own, and reports each attempt killed', async () => {
    // The task's env cannot override the markers; its output tail goes into the reaped result.
    const argv = ['sh', '-c', 'echo "$SCHED_TASK_ID.$SCHED_TASK_ATTEMPT"; sleep 30 & echo $!; wait'];
    executor.start('t10', 1, { argv, env: { [WORKER_ENV]: 'spoofed', [TASK_ID_ENV]: 'other' } });
    const other = new Executor({ dataDir: dir, workerId: randomUUID() });
    other.start('t11', 1, { argv: ['sleep', '30'] });
    const pid = executor.get('t10')!.pid;
    pids.push(pid, other.get('t11')!.pid);
    let child = 0;
    await until(() => (child = Number(readLines(executor.logPaths('t10', 1).stdout)[1] ?? 0)) > 0);
    pids.push(child);
    // A new executor with the same worker id plays the restarted worker.
    const reaped = new Executor({ dataDir: dir, workerId }).reapOrphans();
    const waited = executor.wait('t10', 1);
    // The group dies with its first member killed, so a child reaped meanwhile may be missing from the list.
    expect(reaped.pids).to.include(pid);
    expect(reaped.pids.every((p) => p === pid || p === child)).to.equal(true);
    // The task and its child make one attempt.
    expect(reaped.results).to.have.length(1);
    const r = reaped.results[0]!;
    expect(r).to.include({ taskId: 't10', attempt: 1, pid, exitCode: 137, signal: 'SIGKILL', error: REAPED_ERROR });
    expect(r.finishedUnixMs).to.be.closeTo(Date.now(), 5000);
    expect(Buffer.from(r.stdoutTail).toString()).to.equal(`t10.1\n${child}\n`);
    await until(() => !alive(child));
    expect((await waited)!.signal).to.equal('SIGKILL');
    expect(other.running()).to.have.length(1);
    await other.stopAll(0);
  });
});

function readLines(file: string): string[] {
  try {
    return readFileSync(file, 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
}
