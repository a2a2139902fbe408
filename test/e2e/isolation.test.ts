// Isolation on the worker with the built binaries: a task over its --mem is
// OOM-killed in its cgroup and says so, cancel reaches a process that left the
// task's process group (setsid), and a task runs as the user it names.
import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { detectCgroups } from '../../worker-node/src/cgroups-detect.js';
import { BIN, run, startLocalManager, startWorker, waitFor, writeYaml, type Daemon } from '../support/processes.js';
import { alive } from '../support/proc.js';

interface TaskJson {
  state: string;
  error?: string;
  exitCode?: number;
  oomKilled?: boolean;
  peakMemoryBytes?: string;
  cpuTimeUs?: string;
}

describe('e2e: isolation (cgroups, run_as)', function () {
  this.timeout(90_000);
  let dir: string;
  let address: string;
  const daemons: Daemon[] = [];
  const leftovers: number[] = [];
  const ctl = (...args: string[]) => run(BIN.schedctl, ['--manager', address, ...args], { timeoutMs: 60_000 });
  const show = async (id: string): Promise<TaskJson> => JSON.parse((await ctl('-o', 'json', 'tasks', 'show', id)).stdout) as TaskJson;

  before(async function () {
    if (process.geteuid?.() !== 0) {
      console.log('      skipped: not root (cgroups and other users need it)');
      return this.skip();
    }
    const layout = detectCgroups();
    if (layout.version === '') {
      console.log(`      skipped: no cgroups here (${layout.note})`);
      return this.skip();
    }
    dir = mkdtempSync(join(tmpdir(), 'sched-isolation-'));
    const manager = await startLocalManager(dir);
    daemons.push(manager.daemon);
    address = manager.address;
    daemons.push(await startWorker(address, dir, 'allowed_users: [nobody]\ncancel_grace: 500ms\n'));
  });

  after(async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    for (const pid of leftovers) if (alive(pid)) process.kill(pid, 'SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the worker runs its tasks in cgroups, and says so at start and in workers show', async () => {
    const log = readFileSync(join(dir, 'worker.log'), 'utf8');
    expect(log).to.match(/each task runs in a cgroup of its own with its limits/);
    expect(log).to.match(/tasks run as root; set run_as/);
    const workerId = readFileSync(join(dir, 'worker', 'worker-id'), 'utf8').trim();
    const shown = await ctl('workers', 'show', workerId);
    expect(shown.code, shown.stderr).to.equal(0);
    expect(shown.stdout).to.match(new RegExp(`Limits:\\s+enforced \\(cgroup ${detectCgroups().version}; default max pids 4096\\)`));
    expect(shown.stdout).to.match(/Allowed users:\s+nobody/);
  });

  it('a worker whose run_as or allowed_users names an unknown user exits 2 at start, naming the key', async () => {
    for (const [line, key] of [['run_as: no-such-user-here', 'run_as'], ['allowed_users: [nobody, no-such-user-here]', 'allowed_users']] as const) {
      const yaml = writeYaml(join(dir, 'bad-user.yaml'), `manager: ${address}\ndata_dir: ${join(dir, 'bad-user')}\n${line}\n`);
      const r = await run(BIN.worker, ['-f', yaml]);
      expect(r.code).to.equal(2);
      expect(r.stderr).to.equal(`worker-node: ${yaml}: ${key}: no user "no-such-user-here" in the system's user database\n`);
    }
  });

  it('a task over its --mem is killed by the OOM killer, and --wait and tasks show say so', async function () {
    if (!existsSync('/usr/bin/python3')) {
      console.log('      skipped: no /usr/bin/python3');
      return this.skip();
    }
    const r = await ctl('tasks', 'run', '--mem', '64Mi', '--wait', '--', '/usr/bin/python3', '-c', 'b = bytearray(300 * 2**20)');
    expect(r.code).to.equal(137);
    expect(r.stderr).to.match(/out of memory/);
    const id = r.stdout.trim().split('\n')[0]!;
    const t = await show(id);
    expect(t.oomKilled).to.equal(true);
    expect(t.error).to.equal('out of memory: killed by the kernel at its 64Mi limit');
    expect(Number(t.peakMemoryBytes)).to.be.within(48 * 2 ** 20, 64 * 2 ** 20);
    expect((await ctl('tasks', 'show', id)).stdout).to.match(/out of memory: killed by the kernel at its 64Mi limit/);
  });

  it('tasks cancel kills a process that left the task\'s process group (setsid)', async () => {
    const pidFile = join(dir, 'escaped');
    const submitted = await ctl('tasks', 'run', '--', 'sh', '-c', `setsid sleep 313 & echo $! > ${pidFile}; wait`);
    expect(submitted.code, submitted.stderr).to.equal(0);
    const id = submitted.stdout.trim();
    // Once it is sleep, setsid has made it a session (and process group) of its own.
    const escaped = await waitFor('the escaped sleep', () => {
      const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : 0;
      return pid > 0 && readFileSync(`/proc/${pid}/cmdline`, 'latin1').startsWith('sleep') && pid;
    });
    leftovers.push(escaped);
    const stat = readFileSync(`/proc/${escaped}/stat`, 'utf8');
    expect(Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2])).to.equal(escaped);
    const r = await ctl('tasks', 'cancel', id);
    expect(r.code, r.stderr).to.equal(0);
    await waitFor('the escaped sleep is gone', () => !alive(escaped), 15_000);
    expect((await show(id)).state).to.equal('TASK_STATE_DEAD');
  });

  it('a worker killed with SIGKILL: its watchdog kills what is in its tasks\' cgroups, also a process without markers', async () => {
    const doomed = await startWorker(address, dir, 'labels: {pool: doomed}\n', 'worker2');
    daemons.push(doomed);
    const pidFile = join(dir, 'unmarked');
    // env -i: the escaped sleep carries no SCHED_* marker, so only its cgroup says whose it is.
    const submitted = await ctl('tasks', 'run', '--label', 'pool=doomed', '--', 'sh', '-c', `env -i setsid sleep 313 & echo $! > ${pidFile}; wait`);
    expect(submitted.code, submitted.stderr).to.equal(0);
    const escaped = await waitFor('the escaped pid', () => {
      const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : 0;
      return pid > 0 && readFileSync(`/proc/${pid}/cmdline`, 'latin1').startsWith('sleep') && pid;
    });
    leftovers.push(escaped);
    expect(readFileSync(`/proc/${escaped}/environ`, 'latin1')).to.not.include('SCHED_');
    await doomed.kill9();
    await waitFor('the unmarked sleep is gone', () => !alive(escaped), 15_000);
  });

  it('--user nobody on a worker whose allowed_users lists it runs the task as uid 65534', async () => {
    const r = await ctl('tasks', 'run', '--user', 'nobody', '--wait', '--', 'id', '-u');
    expect(r.code, r.stderr).to.equal(0);
    const id = r.stdout.trim().split('\n')[0]!;
    expect((await ctl('tasks', 'logs', id)).stdout).to.equal('65534\n');
  });

  it('a worker with run_as runs every task as that user; a --user no worker allows waits, and --wait exits 125 saying so', async () => {
    daemons.push(await startWorker(address, dir, 'run_as: nobody\nlabels: {pool: run-as}\n', 'worker-run-as'));
    await waitFor('both workers connected', async () => ((await ctl('workers', 'ls')).stdout.match(/\bconnected\b/g) ?? []).length === 2);
    const workerId = readFileSync(join(dir, 'worker-run-as', 'worker-id'), 'utf8').trim();
    expect((await ctl('workers', 'show', workerId)).stdout).to.match(/Tasks run as:\s+nobody/);
    const r = await ctl('tasks', 'run', '-l', 'pool=run-as', '--wait', '--', 'sh', '-c', 'id -u; echo $HOME $USER');
    expect(r.code, r.stderr).to.equal(0);
    expect((await ctl('tasks', 'logs', r.stdout.trim())).stdout).to.match(/^65534\n\/\S* nobody\n$/);
    // daemon is allowed nowhere: the one worker of the pool runs as nobody, the other allows only nobody.
    const refused = await ctl('tasks', 'run', '-l', 'pool=run-as', '--user', 'daemon', '--wait', '--', 'id', '-u');
    expect(refused.code, refused.stderr).to.equal(125);
    expect(refused.stderr, refused.stderr).to.match(/workers fit: .*\d user daemon not allowed.*; no connected worker could ever fit it/);
  });

  it('a task reports its CPU time and peak memory from its cgroup', async () => {
    const r = await ctl('tasks', 'run', '--wait', '--', 'sh', '-c', 'i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done');
    expect(r.code, r.stderr).to.equal(0);
    const t = await show(r.stdout.trim().split('\n')[0]!);
    expect(Number(t.cpuTimeUs)).to.be.greaterThan(0);
    expect(Number(t.peakMemoryBytes)).to.be.greaterThan(0);
  });
});
