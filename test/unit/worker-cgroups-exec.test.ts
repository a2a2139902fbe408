import { expect } from 'chai';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setupCgroups, type Cgroups } from '../../worker-node/src/cgroups.js';
import { Executor, type ExecSpec, type FinishedEvent } from '../../worker-node/src/executor.js';
import { reapLeftovers } from '../../worker-node/src/reaper.js';
import { until } from '../support/until.js';
import { alive } from '../support/proc.js';

const MI = 2 ** 20;

/** Alive and not a zombie (a killed process re-parented to init may be reaped late; it runs nothing). */

/** Real task cgroups: this machine's (root, a writable v1 or v2 hierarchy), else the whole file skips. */
describe('worker executor in cgroups (real processes, real cgroups)', function () {
  let dir: string;
  let executor: Executor;
  let cgroups: Cgroups;
  const workerId = randomUUID();
  const runId = randomBytes(8).toString('hex');

  before(function () {
    const setup = setupCgroups({ mode: 'auto', workerId, runId, memoryHeadroom: 0, maxPids: 4096, cpuHardLimit: true });
    if (!setup.cgroups) {
      console.log(`      skipped: this machine gives no writable cgroups (${setup.note})`);
      this.skip();
    }
    cgroups = setup.cgroups;
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'worker-cg-'));
    executor = new Executor({ dataDir: dir, workerId, runId, cgroups });
  });
  afterEach(async () => {
    await executor?.stopAll(0);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  after(async () => {
    await cgroups?.close();
  });

  async function run(taskId: string, spec: ExecSpec): Promise<FinishedEvent> {
    expect(executor.start(taskId, 1, spec)).to.equal('started');
    return (await executor.wait(taskId, 1))!;
  }
  const attemptDirs = (taskId: string): string[] => cgroups.runPaths.map((p) => join(p, `${taskId}.1`));

  it('a task over its memory limit is OOM-killed, says so, and its peak is near the limit', async function () {
    if (!existsSync('/usr/bin/python3')) {
      console.log('      skipped: no /usr/bin/python3');
      return this.skip();
    }
    const r = await run('oom', { argv: ['/usr/bin/python3', '-c', 'b = bytearray(300 * 2**20)'], memoryBytes: 64 * MI });
    expect(r).to.include({ oomKilled: true, signal: 'SIGKILL', exitCode: 137 });
    expect(r.error).to.equal('out of memory: killed by the kernel at its 64Mi limit');
    expect(r.peakMemoryBytes).to.be.within(48 * MI, 64 * MI);
    // Its cgroup goes once empty.
    await until('the attempt cgroup is removed', () => attemptDirs('oom').every((d) => !existsSync(d)), 10_000, 20);
  });

  it('a task within its limit is not OOM-killed; a busy loop has CPU time, and the peak is recorded', async () => {
    const r = await run('cpu', { argv: ['sh', '-c', 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done'], memoryBytes: 64 * MI, millicpu: 1000 });
    expect(r).to.include({ exitCode: 0, error: '' });
    expect(r.oomKilled).to.equal(undefined);
    expect(r.cpuTimeUs).to.be.greaterThan(10_000);
    expect(r.peakMemoryBytes).to.be.greaterThan(0);
  });

  it('writes the limits into the attempt cgroup before the task runs', async () => {
    executor.start('limits', 1, { argv: ['sleep', '30'], memoryBytes: 96 * MI, millicpu: 250, maxPids: 33 });
    const dirs = attemptDirs('limits');
    const file = (name: string): string | undefined => {
      for (const d of dirs) if (existsSync(join(d, name))) return readFileSync(join(d, name), 'utf8').trim();
      return undefined;
    };
    if (cgroups.version === 'v1') {
      expect(file('memory.limit_in_bytes')).to.equal(String(96 * MI));
      expect(file('cpu.cfs_quota_us')).to.equal('25000');
      expect(file('cpu.shares')).to.equal('256');
    } else {
      expect(file('memory.max')).to.equal(String(96 * MI));
      expect(file('cpu.max')).to.equal('25000 100000');
    }
    expect(file('pids.max')).to.equal('33');
    await until('the task is in its cgroup', () => executor.get('limits')?.spawned === true && readFileSync(join(dirs[0]!, 'cgroup.procs'), 'utf8').trim() === String(executor.get('limits')!.pid));
    executor.cancel('limits', 1, 0);
    await executor.wait('limits', 1);
  });

  it('cancel kills a process that left the task\'s process group (setsid)', async () => {
    executor.start('escape', 1, { argv: ['sh', '-c', 'setsid sleep 313 & echo $!; wait'] });
    const out = executor.logPaths('escape', 1).stdout;
    let escaped = 0;
    // Once it is sleep, setsid has made it a session (and group) of its own.
    await until('the escaped sleep runs', () => (escaped = Number(readFileSync(out, 'utf8').trim())) > 0 && readFileSync(`/proc/${escaped}/cmdline`, 'latin1').startsWith('sleep'), 10_000, 10);
    expect(alive(escaped)).to.equal(true);
    // Its own session and group: the process-group kill alone would miss it.
    const stat = readFileSync(`/proc/${escaped}/stat`, 'utf8');
    expect(Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2])).to.equal(escaped);
    executor.cancel('escape', 1, 5000);
    const r = (await executor.wait('escape', 1))!;
    expect(r.signal).to.equal('SIGTERM');
    await until('the escaped sleep is gone', () => !alive(escaped), 10_000, 10);
  });

  it('a task that exits kills what it left in its cgroup (setsid included)', async () => {
    const r = await run('left', { argv: ['sh', '-c', 'setsid sleep 313 & echo $!'] });
    const escaped = Number(Buffer.from(r.stdoutTail).toString().trim());
    expect(r.exitCode).to.equal(0);
    await until('the escaped sleep is gone', () => !alive(escaped), 10_000, 10);
  });

  it('bounds a fork bomb with the pids limit', async () => {
    const r = await run('forks', { argv: ['sh', '-c', 'for i in $(seq 50); do sleep 30 & done; wait'], maxPids: 20 });
    expect(r.exitCode).to.not.equal(0);
    expect(Buffer.from(r.stderrTail).toString()).to.match(/fork/i);
  });

  it('reports start failures through the wrapper as a direct spawn would', async () => {
    const missing = await run('nf', { argv: ['/nonexistent/command'] });
    expect(missing).to.include({ error: 'spawn /nonexistent/command ENOENT', exitCode: 127, pid: 0, startFailed: true });
    const notOnPath = await run('nf2', { argv: ['no-such-program-here'] });
    expect(notOnPath).to.include({ exitCode: 127, startFailed: true });
    const cwd = await run('nf3', { argv: ['true'], cwd: join(dir, 'missing') });
    expect(cwd.error).to.match(/ENOENT.*cwd ".*missing" does not exist/);
    expect(cwd).to.include({ exitCode: 126, startFailed: true });
    const started = await run('ok', { argv: ['sh', '-c', 'exit 127'] });
    expect(started.exitCode).to.equal(127);
    expect(started.startFailed).to.equal(undefined);
    await until('their cgroups are removed', () => ['nf', 'nf2', 'nf3', 'ok'].flatMap(attemptDirs).every((d) => !existsSync(d)), 10_000, 20);
  });

  it('a restarted worker kills what an earlier run left in its cgroups, also without markers, and reports it lost', async () => {
    const otherRun = randomBytes(8).toString('hex');
    const old = setupCgroups({ mode: 'auto', workerId, runId: otherRun, memoryHeadroom: 0, maxPids: 4096 }).cgroups!;
    const oldExecutor = new Executor({ dataDir: dir, workerId, runId: otherRun, cgroups: old });
    // env -i: no SCHED_* markers left in its environment; only its cgroup knows it.
    oldExecutor.start('orphan', 3, { argv: ['sh', '-c', 'exec env -i sleep 313'] });
    let pid = 0;
    await until('the orphan has lost its markers', () => {
      pid = oldExecutor.get('orphan')?.pid ?? 0;
      return pid > 0 && !readFileSync(`/proc/${pid}/environ`, 'latin1').includes('SCHED_');
    }, 10_000, 10);
    const reaped = reapLeftovers({ workerId, runId, isOurs: () => false, cgroups, logPaths: (t) => executor.logPaths(t.taskId, t.attempt) });
    expect(reaped.pids).to.include(pid);
    expect(reaped.results.map((r) => [r.taskId, r.attempt, r.lost])).to.deep.equal([['orphan', 3, true]]);
    await until('the orphan is gone', () => !alive(pid), 10_000, 10);
    await oldExecutor.wait('orphan', 3);
    await until('the old run\'s cgroup is removed', () => old.runPaths.every((d) => !existsSync(d)), 10_000, 20);
  });
});
