import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Executor, REAPED_ERROR, RUN_ENV, TAIL_BYTES, TASK_ID_ENV, WORKER_ENV, type FinishedEvent, type StartedEvent } from '../../worker-node/src/executor.js';
import { baseTaskEnv, DEFAULT_PATH } from '../../worker-node/src/task-env.js';
import { until } from '../support/until.js';
import { alive } from '../support/proc.js';

// A killed grandchild is re-parented to init, which may reap it late; a
// zombie runs nothing, so it counts as gone.

/** A shell that notes a SIGTERM ("term") and carries on: only SIGKILL ends it. */
const TRAPS_TERM = "trap 'echo term' TERM; echo ready; while :; do sleep 0.05; done";

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

  async function run(taskId: string, argv: string[], extra: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {}): Promise<FinishedEvent> {
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
    // The shell notes the SIGTERM and carries on; only the SIGKILL after the grace ends it.
    expect(executor.start('t4', 1, { argv: ['sh', '-c', TRAPS_TERM] })).to.equal('started');
    pids.push(executor.get('t4')!.pid);
    const out = executor.logPaths('t4', 1).stdout;
    await until('the condition', () => readLines(out).includes('ready')); // the trap is installed
    const t0 = Date.now();
    executor.cancel('t4', 1, 300);
    const r = (await executor.wait('t4', 1))!;
    expect(r).to.include({ signal: 'SIGKILL', exitCode: 137 });
    expect(r.timedOut).to.equal(undefined);
    expect(readLines(out)).to.include('term'); // SIGTERM came first, and did not end it
    // The grace was waited (a lower bound: a busy machine only makes it longer).
    expect(Date.now() - t0).to.be.at.least(300 - 5);
  });

  it('--timeout sends SIGTERM, then SIGKILL after the timeout grace to a task that traps it; the result says timed out', async () => {
    const timed = new Executor({ dataDir: dir, workerId, timeoutGraceMs: 300 });
    try {
      expect(timed.start('to1', 1, { argv: ['sh', '-c', TRAPS_TERM], timeoutMs: 200 })).to.equal('started');
      pids.push(timed.get('to1')!.pid);
      const r = (await timed.wait('to1', 1))!;
      expect(r).to.include({ signal: 'SIGKILL', exitCode: 137, timedOut: true });
      expect(readLines(timed.logPaths('to1', 1).stdout)).to.include.members(['ready', 'term']);
      expect(r.finishedUnixMs - r.startedUnixMs).to.be.at.least(200 + 300 - 5);
    } finally {
      await timed.stopAll(0);
    }
  });

  it('reports a task whose escaped child still holds its output pipes once the task itself exits', async () => {
    // The child leaves the task's process group (setsid) but keeps its stdout: the pipe never
    // closes, yet the result must come, with what the task wrote.
    const pidFile = join(dir, 'escaped.pid');
    const script = `setsid sh -c 'echo $$ > ${pidFile}; exec sleep 30' & while [ ! -s ${pidFile} ]; do sleep 0.01; done; echo main; exit 4`;
    const r = await run('esc', ['sh', '-c', script]);
    const escaped = Number(readFileSync(pidFile, 'utf8').trim());
    pids.push(escaped);
    expect(r).to.include({ exitCode: 4, signal: '', error: '' });
    expect(Buffer.from(r.stdoutTail).toString()).to.equal('main\n');
    expect(alive(escaped), 'the escaped child still runs (and holds the pipe)').to.equal(true);
    expect(executor.running()).to.deep.equal([]);
  });

  it('a cancel right after start, before the process reports in, still stops it; of a failed start it changes nothing', async () => {
    const started: StartedEvent[] = [];
    const finished: FinishedEvent[] = [];
    executor.on('started', (e) => started.push(e));
    executor.on('finished', (e) => finished.push(e));
    expect(executor.start('c1', 1, { argv: ['sleep', '30'] })).to.equal('started');
    pids.push(executor.get('c1')!.pid);
    expect(executor.cancel('c1', 1, 5000)).to.equal(true); // same turn as start(): no 'spawn' event yet
    const r = (await executor.wait('c1', 1))!;
    expect(r).to.include({ signal: 'SIGTERM', exitCode: 143 });
    expect(r.startFailed).to.equal(undefined);

    // An asynchronous spawn failure (ENOENT) and a synchronous one (NUL byte): the cancel is
    // accepted, and the result is still the start failure, delivered after start() returned.
    for (const [id, argv, code] of [['c2', ['/nonexistent/x'], 127], ['c3', ['echo', 'a\0b'], 126]] as const) {
      const before = finished.length;
      expect(executor.start(id, 1, { argv: [...argv] })).to.equal('started');
      expect(finished.length).to.equal(before);
      expect(executor.cancel(id, 1, 5000)).to.equal(true);
      const f = (await executor.wait(id, 1))!;
      expect(f).to.include({ exitCode: code, pid: 0, startFailed: true, signal: '' });
    }
    expect(started.map((e) => e.taskId)).to.deep.equal(['c1']);
    expect(finished.map((e) => e.taskId)).to.deep.equal(['c1', 'c2', 'c3']);
    expect(executor.running()).to.deep.equal([]);
  });

  it('kills grandchildren with the process group on cancel', async () => {
    executor.start('t5', 1, { argv: ['sh', '-c', 'sleep 30 & echo $!; sleep 30 & echo $!; wait'] });
    pids.push(executor.get('t5')!.pid);
    const out = executor.logPaths('t5', 1).stdout;
    let children: number[] = [];
    await until('the condition', () => {
      children = readLines(out).map(Number).filter((n) => n > 0);
      return children.length === 2;
    });
    pids.push(...children);
    expect(children.every(alive)).to.equal(true);
    executor.cancel('t5', 1, 5000);
    const r = (await executor.wait('t5', 1))!;
    expect(r.signal).to.equal('SIGTERM');
    await until('the condition', () => !children.some(alive));
  });

  it('kills what a task left in its group when the task exits', async () => {
    const r = await run('t6', ['sh', '-c', 'sleep 30 & echo $!']);
    const child = Number(Buffer.from(r.stdoutTail).toString().trim());
    pids.push(child);
    expect(r.exitCode).to.equal(0);
    await until('the condition', () => !alive(child));
  });

  it('reports a task that never started as start-failed: 127 for a missing command, 126 for the rest, pid 0', async () => {
    const r = await run('t7', ['/nonexistent/command', 'x']);
    expect(r).to.include({ error: 'spawn /nonexistent/command ENOENT', exitCode: 127, pid: 0, startFailed: true, signal: '' });
    const script = join(dir, 'not-executable');
    writeFileSync(script, '#!/bin/sh\n');
    chmodSync(script, 0o644);
    const r2 = await run('t8', [script]);
    expect(r2.error).to.match(/EACCES/);
    expect(r2).to.include({ exitCode: 126, pid: 0, startFailed: true });
    const r3 = await run('t9', ['true'], { cwd: join(dir, 'missing') });
    expect(r3.error).to.match(/ENOENT.*cwd ".*missing" does not exist/);
    expect(r3).to.include({ exitCode: 126, pid: 0, startFailed: true });
    // A NUL byte fails the spawn synchronously: the same kind of result, on the next turn.
    const r4 = await run('t9b', ['echo', 'a\0b']);
    expect(r4).to.include({ exitCode: 126, pid: 0, startFailed: true });
    // A command that started and failed is a result, not a start failure.
    const r5 = await run('t9c', ['sh', '-c', 'exit 127']);
    expect(r5.exitCode).to.equal(127);
    expect(r5.startFailed).to.equal(undefined);
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
    await until('the condition', () => (child = Number(readLines(executor.logPaths('t10', 1).stdout)[1] ?? 0)) > 0);
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
    expect(r).to.include({ taskId: 't10', attempt: 1, pid, exitCode: 137, signal: 'SIGKILL', error: REAPED_ERROR, lost: true });
    expect(r.finishedUnixMs).to.be.closeTo(Date.now(), 5000);
    expect(Buffer.from(r.stdoutTail).toString()).to.equal(`t10.1\n${child}\n`);
    await until('the condition', () => !alive(child));
    expect((await waited)!.signal).to.equal('SIGKILL');
    expect(other.running()).to.have.length(1);
    await other.stopAll(0);
  });

  it('does not reap the tasks of its own run', async () => {
    executor.start('t12', 1, { argv: ['sh', '-c', 'sleep 30 & echo $!; wait'] });
    pids.push(executor.get('t12')!.pid);
    let child = 0;
    await until('the condition', () => (child = Number(readLines(executor.logPaths('t12', 1).stdout)[0] ?? 0)) > 0);
    pids.push(child);
    // The child is not the executor's own pid, yet it carries this run's marker.
    expect(executor.reapOrphans()).to.deep.equal({ pids: [], results: [] });
    expect(alive(child)).to.equal(true);
  });

  it('gives tasks a clean environment: the basics, env_inherit, their own env and the markers', async () => {
    process.env.SCHED_TEST_SECRET = 'worker-only';
    process.env.SCHED_TEST_SHARED = 'passed on';
    try {
      const clean = new Executor({ dataDir: dir, workerId, runId: 'run-1', envInherit: ['SCHED_TEST_SHARED', 'SCHED_TEST_UNSET'] });
      clean.start('e1', 3, { argv: ['env'], env: { OWN: 'x', PATH: '/bin:/usr/bin', [WORKER_ENV]: 'spoofed' } });
      const r = (await clean.wait('e1', 3))!;
      const env = Object.fromEntries(
        Buffer.from(r.stdoutTail)
          .toString()
          .split('\n')
          .filter(Boolean)
          .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
      );
      const expected: Record<string, string> = {
        PATH: '/bin:/usr/bin',
        OWN: 'x',
        SCHED_TEST_SHARED: 'passed on',
        [WORKER_ENV]: workerId,
        [RUN_ENV]: 'run-1',
        SCHED_TASK_ID: 'e1',
        SCHED_TASK_ATTEMPT: '3',
        SCHED_ATTEMPT: '3',
      };
      for (const name of ['HOME', 'LANG', 'TZ', 'USER']) if (process.env[name] !== undefined) expected[name] = process.env[name]!;
      expect(env).to.deep.equal(expected);
    } finally {
      delete process.env.SCHED_TEST_SECRET;
      delete process.env.SCHED_TEST_SHARED;
    }
  });

  it('gives tasks a default PATH when the worker has none', () => {
    expect(baseTaskEnv({ HOME: '/h', SECRET: 's', TZ: 'UTC' }, ['MISSING'])).to.deep.equal({ HOME: '/h', TZ: 'UTC', PATH: DEFAULT_PATH });
    expect(baseTaskEnv({ PATH: '/x', LANG: 'C', USER: 'u', EXTRA: 'e' }, ['EXTRA'])).to.deep.equal({ PATH: '/x', LANG: 'C', USER: 'u', EXTRA: 'e' });
  });

  it('waits a timeout past 2^31 ms instead of firing it at once', async () => {
    // Node fires a plain setTimeout of 2^31 ms or more after 1 ms: the task would be killed at once.
    const r = await run('long', ['sh', '-c', 'sleep 0.3; exit 4'], { timeoutMs: 2 ** 32 - 1 });
    expect(r.exitCode).to.equal(4);
    expect(r.timedOut).to.equal(undefined);
    expect(r.signal).to.equal('');
  });

  it('abandonAll SIGKILLs every running task and reports each as lost', async () => {
    executor.start('a1', 1, { argv: ['sh', '-c', "trap '' TERM; sleep 30 & echo $!; wait"] });
    executor.start('a2', 2, { argv: ['sleep', '30'] });
    pids.push(executor.get('a1')!.pid, executor.get('a2')!.pid);
    let child = 0;
    await until('the condition', () => (child = Number(readLines(executor.logPaths('a1', 1).stdout)[0] ?? 0)) > 0);
    pids.push(child);
    const waited = Promise.all([executor.wait('a1', 1), executor.wait('a2', 2)]);
    expect(executor.abandonAll('lost it').map((t) => `${t.taskId}.${t.attempt}`).sort()).to.deep.equal(['a1.1', 'a2.2']);
    for (const r of await waited) expect(r).to.include({ lost: true, error: 'lost it', signal: 'SIGKILL', exitCode: 137 });
    await until('the condition', () => !alive(child));
  });

  it('keeps its logs dir 0700 and log files 0600 whatever the umask', async () => {
    const old = process.umask(0);
    try {
      const data = join(dir, 'data');
      mkdirSync(join(data, 'logs'), { recursive: true, mode: 0o755 });
      const open = new Executor({ dataDir: data, workerId });
      expect(statSync(open.logDir).mode & 0o777).to.equal(0o700);
      writeFileSync(open.logPaths('m1', 1).stdout, 'old', { mode: 0o666 }); // a leftover of an earlier run
      open.start('m1', 1, { argv: ['true'] });
      await open.wait('m1', 1);
      expect(statSync(open.logPaths('m1', 1).stdout).mode & 0o777).to.equal(0o600);
      expect(statSync(open.logPaths('m1', 1).stderr).mode & 0o777).to.equal(0o600);
      process.umask(0o277); // would leave the owner without write
      const fresh = new Executor({ dataDir: join(dir, 'fresh'), workerId });
      expect(statSync(join(dir, 'fresh')).mode & 0o777).to.equal(0o700);
      expect(statSync(fresh.logDir).mode & 0o777).to.equal(0o700);
      fresh.start('m2', 1, { argv: ['true'] });
      await fresh.wait('m2', 1);
      expect(statSync(fresh.logPaths('m2', 1).stdout).mode & 0o777).to.equal(0o600);
    } finally {
      process.umask(old);
    }
  });
});

function readLines(file: string): string[] {
  try {
    return readFileSync(file, 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
}
