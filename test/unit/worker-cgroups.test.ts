import { expect } from 'chai';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { cgroupMounts, detectCgroups, ownCgroups } from '../../worker-node/src/cgroups-detect.js';
import { setupCgroups } from '../../worker-node/src/cgroups.js';

const MI = 2 ** 20;

/** This machine's layout (cgroup v1, a hybrid system's empty v2 mount at /sys/fs/cgroup/unified). */
const V1_SELF = '9:name=systemd:/\n8:pids:/\n6:freezer:/\n4:memory:/session/abc\n3:cpuset:/\n2:cpuacct:/\n1:cpu:/\n0::/\n';
const V1_MOUNTS = [
  '30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
  '31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu',
  '32 30 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct',
  '33 30 0:30 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset',
  '34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory',
  '36 30 0:33 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer',
  '38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids',
  '39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd',
  '40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
].join('\n');
/** A systemd v2 host: one unified hierarchy, the worker in its service's cgroup. */
const V2_SELF = '0::/system.slice/sched-worker.service\n';
const V2_MOUNTS = '25 20 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot';

describe('worker cgroups: detection and limits', function () {
  let root: string;
  const file = (path: string, text = ''): void => {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  };
  const read = (path: string): string => readFileSync(join(root, path), 'utf8');

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'worker-cgroups-'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('parses mountinfo (escapes, optional fields) and /proc/self/cgroup', () => {
    const mounts = cgroupMounts(`${V2_MOUNTS}\n41 30 0:40 /sub /mnt/with\\040space rw - cgroup cgroup rw,cpu,cpuacct\n21 26 0:20 / /proc rw - proc proc rw`);
    expect(mounts).to.deep.equal([
      { root: '/', point: '/sys/fs/cgroup', fstype: 'cgroup2', options: ['rw', 'nsdelegate', 'memory_recursiveprot'] },
      { root: '/sub', point: '/mnt/with space', fstype: 'cgroup', options: ['rw', 'cpu', 'cpuacct'] },
    ]);
    expect([...ownCgroups(V1_SELF)]).to.deep.include.members([['memory', '/session/abc'], ['', '/'], ['cpu', '/']]);
  });

  it('v1: per-controller hierarchies, the worker\'s own cgroup in each; the empty v2 mount is not chosen', () => {
    file('proc/self/cgroup', V1_SELF);
    file('proc/self/mountinfo', V1_MOUNTS);
    file('sys/fs/cgroup/unified/cgroup.controllers', '\n');
    const layout = detectCgroups(root);
    expect(layout).to.deep.equal({
      version: 'v1',
      hierarchies: [
        { controllers: ['pids'], dir: join(root, 'sys/fs/cgroup/pids') },
        { controllers: ['freezer'], dir: join(root, 'sys/fs/cgroup/freezer') },
        { controllers: ['memory'], dir: join(root, 'sys/fs/cgroup/memory/session/abc') },
        { controllers: ['cpuacct'], dir: join(root, 'sys/fs/cgroup/cpuacct') },
        { controllers: ['cpu'], dir: join(root, 'sys/fs/cgroup/cpu') },
      ],
    });
  });

  it('v1: cpu and cpuacct joined in one hierarchy, and a mount of a sub-tree (a cgroup namespace)', () => {
    file('proc/self/cgroup', '3:cpu,cpuacct:/docker/x/job\n2:memory:/docker/x\n');
    file('proc/self/mountinfo', ['50 40 0:30 /docker/x /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup rw,cpu,cpuacct', '51 40 0:31 /elsewhere /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory'].join('\n'));
    // The memory mount does not show the worker's cgroup: not usable.
    expect(detectCgroups(root)).to.deep.equal({ version: 'v1', hierarchies: [{ controllers: ['cpu', 'cpuacct'], dir: join(root, 'sys/fs/cgroup/cpu,cpuacct/job') }] });
  });

  it('v2: the unified hierarchy where it offers controllers; none mounted says so', () => {
    file('proc/self/cgroup', V2_SELF);
    file('proc/self/mountinfo', V2_MOUNTS);
    file('sys/fs/cgroup/system.slice/sched-worker.service/cgroup.controllers', 'cpuset cpu io memory pids\n');
    expect(detectCgroups(root)).to.deep.equal({ version: 'v2', hierarchies: [{ controllers: ['memory', 'cpu', 'pids'], dir: join(root, 'sys/fs/cgroup/system.slice/sched-worker.service') }] });
    file('proc/self/mountinfo', '21 26 0:20 / /proc rw - proc proc rw\n');
    expect(detectCgroups(root)).to.deep.equal({ version: '', note: 'no cgroup file system is mounted' });
  });

  it('v2: enables controllers down the worker\'s subtree, writes the limits, and reads OOM kills, peak memory and CPU time', () => {
    const own = 'sys/fs/cgroup/system.slice/sched-worker.service';
    file('proc/self/cgroup', V2_SELF);
    file('proc/self/mountinfo', V2_MOUNTS);
    file(`${own}/cgroup.controllers`, 'cpu memory pids\n');
    file(`${own}/cgroup.procs`, '4242\n');
    const workerId = randomUUID();
    const setup = setupCgroups({ mode: 'auto', workerId, runId: 'run1', memoryHeadroom: 16 * MI, maxPids: 100, cpuHardLimit: true, layout: detectCgroups(root) });
    expect(setup).to.include({ version: 'v2', note: '' });
    const run = `${own}/sched-${workerId.slice(0, 8)}/run1`;
    // The last write of each controller (a plain file here stands in for the kernel's).
    expect(read(`${own}/cgroup.subtree_control`)).to.equal('+pids');
    expect(read(`${run}/cgroup.subtree_control`)).to.equal('+pids');
    expect(setup.cgroups!.runPaths).to.deep.equal([join(root, run)]);

    const cg = setup.cgroups!.create({ taskId: 't1', attempt: 2 }, { memoryBytes: 64 * MI, millicpu: 1500 });
    const at = `${run}/t1.2`;
    expect(cg.procsFiles).to.deep.equal([join(root, at, 'cgroup.procs')]);
    expect(read(`${at}/memory.max`)).to.equal(String(80 * MI)); // the headroom added
    expect(read(`${at}/cpu.max`)).to.equal('150000 100000');
    expect(read(`${at}/cpu.weight`)).to.equal('150');
    expect(read(`${at}/pids.max`)).to.equal('100'); // the worker's default
    expect(existsSync(join(root, at, 'memory.swap.max'))).to.equal(false); // a kernel without swap has none

    // No memory.peak (before 5.19): memory.current is sampled.
    expect(cg.needsSampling).to.equal(true);
    file(`${at}/memory.current`, `${50 * MI}\n`);
    cg.sample();
    file(`${at}/memory.current`, `${1 * MI}\n`);
    file(`${at}/memory.events`, 'low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n');
    file(`${at}/cpu.stat`, 'usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\n');
    expect(cg.stats(true)).to.deep.equal({ oomKilled: true, peakMemoryBytes: 50 * MI, cpuTimeUs: 123456 });
    file(`${at}/memory.peak`, `${70 * MI}\n`);
    file(`${at}/memory.events`, 'oom 0\noom_kill 0\n');
    expect(cg.stats(false)).to.deep.equal({ oomKilled: false, peakMemoryBytes: 70 * MI, cpuTimeUs: 123456 });

    // No memory reserved: no memory limit; no CPU reserved: no quota.
    setup.cgroups!.create({ taskId: 't2', attempt: 1 }, { memoryBytes: 0, millicpu: 0, maxPids: 7 });
    expect(existsSync(join(root, run, 't2.1/memory.max'))).to.equal(false);
    expect(existsSync(join(root, run, 't2.1/cpu.max'))).to.equal(false);
    expect(read(`${run}/t2.1/pids.max`)).to.equal('7');
  });

  it('cgroups: off, and a tree it cannot write, run tasks without limits and say why', () => {
    expect(setupCgroups({ mode: 'off', workerId: 'w', runId: 'r', memoryHeadroom: 0, maxPids: 1 })).to.deep.equal({ cgroups: undefined, version: '', note: 'cgroups: off in the worker config' });
    const layout = { version: 'v1' as const, hierarchies: [{ controllers: ['memory'], dir: join(root, 'not-a-dir') }] };
    file('not-a-dir', 'a file, so nothing can be made below it');
    const setup = setupCgroups({ mode: 'auto', workerId: 'w', runId: 'r', memoryHeadroom: 0, maxPids: 1, layout });
    expect(setup.cgroups).to.equal(undefined);
    expect(setup.note).to.match(/^cannot make cgroups under .*not-a-dir: ENOTDIR$/);
  });

  it('v1 for real: a cgroup made under the worker\'s own, its limits written, then removed', async function () {
    const setup = setupCgroups({ mode: 'auto', workerId: randomUUID(), runId: randomBytes(8).toString('hex'), memoryHeadroom: 0, maxPids: 64 });
    if (setup.version !== 'v1') {
      console.log(`      skipped: this machine has no writable cgroup v1 (${setup.version || setup.note})`);
      return this.skip();
    }
    const own = detectCgroups();
    expect(own.version).to.equal('v1');
    const cgroups = setup.cgroups!;
    // Nested under the worker's own cgroup in each hierarchy.
    if (own.version === 'v1') for (const [i, p] of cgroups.runPaths.entries()) expect(p.startsWith(`${own.hierarchies[i]!.dir}/sched-`)).to.equal(true);
    const cg = cgroups.create({ taskId: 'real', attempt: 1 }, { memoryBytes: 32 * MI, millicpu: 500 });
    const dirs = cgroups.runPaths.map((p) => join(p, 'real.1'));
    const value = (name: string): string => readFileSync(dirs.map((d) => join(d, name)).find((f) => existsSync(f))!, 'utf8').trim();
    expect(value('memory.limit_in_bytes')).to.equal(String(32 * MI));
    if (dirs.some((d) => existsSync(join(d, 'memory.memsw.limit_in_bytes')))) expect(value('memory.memsw.limit_in_bytes')).to.equal(String(32 * MI));
    // A weight in proportion to --cpu, and no quota without cpu_hard_limit: an idle machine is used.
    expect(value('cpu.shares')).to.equal('512');
    expect(value('cpu.cfs_quota_us')).to.equal('-1');
    expect(value('pids.max')).to.equal('64');
    expect(cg.procs()).to.deep.equal([]);
    cgroups.release(cg);
    await cgroups.close();
    for (const d of [...dirs, ...cgroups.runPaths, ...cgroups.runPaths.map(dirname)]) expect(existsSync(d), d).to.equal(false);
  });
});
