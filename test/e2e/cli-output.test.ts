// schedctl's output against the built management node and a worker: listings
// newest first with short ids that fit 80 columns, -o wide / name / json / yaml,
// --no-headers, the "showing N of M" note, --state and --outcome, worker names,
// drain / undrain / rm of many workers, and SCHED_MANAGER / SCHED_CONFIG.
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { BIN, run, startLocalManager, startWorker, waitFor, writeYaml, type Daemon } from '../support/processes.js';

/** The environment of every schedctl here: no config file or manager from the machine running the tests. */
const CLEAN_ENV = { ...process.env, SCHED_CONFIG: '', SCHEDCTL_CONFIG: '', SCHED_MANAGER: '' };

describe('e2e: schedctl output', function () {
  this.timeout(90_000);
  let dir: string;
  let address: string;
  let workerId: string;
  const daemons: Daemon[] = [];
  /** Task ids in the order they were submitted. */
  const submitted: string[] = [];
  const ctl = (...args: string[]) => run(BIN.schedctl, ['--manager', address, ...args], { env: CLEAN_ENV });
  const ok = async (...args: string[]) => {
    const r = await ctl(...args);
    expect(r.code, `${args.join(' ')}: ${r.stderr}`).to.equal(0);
    return r;
  };
  const submit = async (...args: string[]) => {
    const ids = (await ok('tasks', 'run', ...args)).stdout.trim().split('\n');
    submitted.push(...ids);
    return ids;
  };
  const ended = async (id: string) => /^State:\s+(done|dead)$/m.test((await ok('tasks', 'show', id)).stdout);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sched-cli-output-'));
    const manager = await startLocalManager(dir);
    daemons.push(manager.daemon);
    address = manager.address;
    daemons.push(await startWorker(address, dir, 'name: builder\nreconnect_interval: 200ms\ncapacity: {cpu: 4, memory: 1Gi}\n', 'w'));
    workerId = readFileSync(join(dir, 'w', 'worker-id'), 'utf8').trim();

    await submit('--count', '3', '--', 'true');
    await submit('--', 'sh', '-c', 'exit 3');
    await submit('--timeout', '1s', '--', 'sleep', '30');
    await submit('--', 'sh', '-c', `echo ${'a-rather-long-argument '.repeat(6)}`);
    for (const id of submitted) await waitFor(`task ${id} ended`, () => ended(id), 30_000);
  });

  after(async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('tasks ls: newest first, short ids (the last 8 characters), every line within 80 columns', async () => {
    const r = await ok('tasks', 'ls');
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).to.match(/^ID\s+STATE\s+WORKER\s+EXIT\s+AGE\s+DURATION\s+COMMAND\s+REASON$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).to.deep.equal([...submitted].reverse().map((id) => id.slice(-8)));
    for (const line of lines) expect(line.length, line).to.be.at.most(80);
    expect(r.stdout).to.include('…');
    expect(r.stdout).to.match(new RegExp(`^${submitted[3]!.slice(-8)}\\s+done\\s+${workerId.slice(0, 8)}\\s+3\\s.*\\ssh -c 'exit`, 'm'));
    expect(r.stdout).to.match(/\stimed out/);
    expect(r.stderr).to.equal('');
    // A short id goes wherever an id does.
    const shown = await ok('tasks', 'show', submitted[0]!.slice(-8));
    expect(shown.stdout).to.match(new RegExp(`^ID:\\s+${submitted[0]}$`, 'm'));
  });

  it('-o wide: full ids and every column; -o name: full ids alone; --no-headers: no header', async () => {
    const wide = await ok('-o', 'wide', 'tasks', 'ls');
    const lines = wide.stdout.trimEnd().split('\n');
    expect(lines[0]).to.match(/^ID\s+STATE\s+OUTCOME\s+PRI\s+WORKER\s+EXIT\s+AGE\s+DURATION\s+COMMAND\s+REASON\s+GROUP$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).to.deep.equal([...submitted].reverse());
    expect(wide.stdout).to.match(new RegExp(`^${submitted[3]}\\s+done\\s+failed\\s+0\\s+${workerId}\\s+3\\s`, 'm'));
    expect(wide.stdout).to.match(new RegExp(`^${submitted[4]}\\s+done\\s+timed-out\\s`, 'm'));
    expect(wide.stdout).to.not.include('…');
    expect(wide.stdout).to.match(/\stimed out after 1s(\s|$)/m);

    const names = await ok('-o', 'name', 'tasks', 'ls');
    expect(names.stdout).to.equal(`${[...submitted].reverse().join('\n')}\n`);
    const workers = await ok('-o', 'name', 'workers', 'ls');
    expect(workers.stdout).to.equal(`${workerId}\n`);

    const bare = await ok('--no-headers', 'tasks', 'ls');
    expect(bare.stdout.trimEnd().split('\n').map((l) => l.split(/\s+/)[0])).to.deep.equal([...submitted].reverse().map((id) => id.slice(-8)));
  });

  it('--limit says on stderr how many it shows of how many; --all shows them all', async () => {
    const some = await ok('tasks', 'ls', '--limit', '2');
    expect(some.stdout.trimEnd().split('\n')).to.have.length(3);
    expect(some.stderr).to.equal(`showing 2 of ${submitted.length} (newest first); --all for all, --limit N for more\n`);
    const all = await ok('tasks', 'ls', '--all', '--oldest-first');
    expect(all.stdout.trimEnd().split('\n').slice(1).map((l) => l.split(/\s+/)[0])).to.deep.equal(submitted.map((id) => id.slice(-8)));
    expect(all.stderr).to.equal('');
  });

  it('-o json and -o yaml of a listing: the tasks and the total, no paging fields', async () => {
    const json = JSON.parse((await ok('-o', 'json', 'tasks', 'ls', '--limit', '2')).stdout) as Record<string, unknown>;
    expect(Object.keys(json).sort()).to.deep.equal(['tasks', 'total']);
    expect(json['total']).to.equal(submitted.length);
    expect((json['tasks'] as Array<{ id: string }>).map((t) => t.id)).to.deep.equal([...submitted].reverse().slice(0, 2));
    const yaml = parseYaml((await ok('-o', 'yaml', 'workers', 'ls')).stdout) as { workers: Array<{ id: string; name: string }> };
    expect(Object.keys(yaml)).to.deep.equal(['workers']);
    expect(yaml.workers.map((w) => [w.id, w.name])).to.deep.equal([[workerId, 'builder']]);
  });

  it('--outcome and --state filter on the management node', async () => {
    const failed = await ok('-o', 'name', 'tasks', 'ls', '--outcome', 'failed');
    expect(failed.stdout).to.equal(`${submitted[3]}\n`);
    const timedOut = await ok('-o', 'name', 'tasks', 'ls', '--outcome', 'timed-out');
    expect(timedOut.stdout).to.equal(`${submitted[4]}\n`);
    const succeeded = await ok('-o', 'name', 'tasks', 'ls', '--outcome', 'succeeded', '--oldest-first');
    expect(succeeded.stdout).to.equal(`${[...submitted.slice(0, 3), submitted[5]].join('\n')}\n`);
    expect((await ok('tasks', 'ls', '--state', 'running')).stdout.trimEnd().split('\n')).to.have.length(1);
    const bad = await ctl('tasks', 'ls', '--outcome', 'exploded');
    expect(bad.code).to.equal(2);
  });

  it('workers: NAME, names as ids, drain of many with a deadline, undrain, rm refused for a connected one', async () => {
    const ls = await ok('workers', 'ls');
    expect(ls.stdout.split('\n')[0]).to.match(/^ID\s+NAME\s+STATE\s+CPU\s+MEM\s+TASKS\s+LAST SEEN$/);
    expect(ls.stdout).to.match(new RegExp(`^${workerId.slice(0, 8)}\\s+builder\\s+connected\\s`, 'm'));
    const show = await ok('workers', 'show', 'builder');
    expect(show.stdout).to.match(/^Name:\s+builder$/m);
    expect(show.stdout).to.match(new RegExp(`^ID:\\s+${workerId}$`, 'm'));

    const drained = await ctl('workers', 'drain', '--deadline', '1h', 'builder', 'nobody');
    expect(drained.code).to.equal(1);
    expect(drained.stderr).to.match(/^schedctl: cannot drain nobody: worker "nobody" not found\n$/);
    expect(drained.stdout).to.match(/^ID\s+NAME\s+STATE\s+TASKS\s+DEADLINE$/m);
    expect(drained.stdout).to.match(/\sbuilder\s+connected,draining\s+0\s+\S+ \(in (59m|1h)\)$/m);
    expect((await ok('workers', 'show', workerId.slice(0, 8))).stdout).to.match(/^Drain deadline:\s+\S+ \(in (59m|1h)\)$/m);
    const undrained = await ok('-o', 'json', 'workers', 'undrain', 'builder');
    expect((JSON.parse(undrained.stdout) as { workers: Array<{ draining: boolean }> }).workers.map((w) => w.draining)).to.deep.equal([false]);

    const rm = await ctl('workers', 'rm', 'builder');
    expect(rm.code).to.equal(1);
    expect(rm.stderr.trimEnd().split('\n')).to.have.length(1);
    expect(rm.stderr).to.match(/^schedctl: cannot remove builder: /);
    expect((await ok('workers', 'ls')).stdout).to.match(/\sbuilder\s+connected\s/);
  });

  it('workers drain --wait waits until the worker runs nothing, saying so on stderr', async () => {
    const [id] = await submit('--', 'sleep', '2');
    await waitFor('the task running', async () => /^State:\s+scheduled$/m.test((await ok('tasks', 'show', id!)).stdout));
    const r = await ok('workers', 'drain', '--wait', 'builder');
    expect(r.stderr).to.match(/^builder: 1 task still running$/m);
    expect(r.stderr).to.match(/^builder: drained, runs nothing$/m);
    expect(await ended(id!)).to.equal(true);
    await ok('workers', 'undrain', 'builder');
  });

  it('status prints data under -o json, -o yaml and -o name', async () => {
    const json = JSON.parse((await ok('-o', 'json', 'status')).stdout) as { version: string };
    expect(json.version).to.be.a('string').and.not.equal('');
    expect(parseYaml((await ok('-o', 'yaml', 'status')).stdout)).to.deep.equal(json);
    expect((await ok('-o', 'name', 'status')).stdout).to.equal(`${address}\n`);
  });

  it('SCHED_MANAGER and SCHED_CONFIG name the management node; --manager overrides both', async () => {
    const viaEnv = await run(BIN.schedctl, ['status'], { env: { ...CLEAN_ENV, SCHED_MANAGER: address } });
    expect(viaEnv.code, viaEnv.stderr).to.equal(0);
    const file = writeYaml(join(dir, 'ctl.yaml'), `manager: ${address}\ntimeout: 5s\n`);
    const viaConfig = await run(BIN.schedctl, ['-v', 'status'], { env: { ...CLEAN_ENV, SCHED_CONFIG: file } });
    expect(viaConfig.code, viaConfig.stderr).to.equal(0);
    expect(viaConfig.stderr).to.include(`config: ${file}; manager: ${address}; timeout: 5000ms`);
    const overridden = await run(BIN.schedctl, ['--manager', '127.0.0.1:1', 'status'], { env: { ...CLEAN_ENV, SCHED_MANAGER: address } });
    expect(overridden.code).to.equal(1);
    expect(overridden.stderr).to.match(/^schedctl: cannot reach the management node at 127\.0\.0\.1:1: connection refused/);
    // A bare number in the config is refused, naming the key: 5 could be seconds or milliseconds.
    const bare = writeYaml(join(dir, 'bare.yaml'), `manager: ${address}\ntimeout: 5\n`);
    const refused = await run(BIN.schedctl, ['status'], { env: { ...CLEAN_ENV, SCHED_CONFIG: bare } });
    expect([refused.code, refused.stderr]).to.deep.equal([2, `schedctl: ${bare}: timeout: invalid duration "5": add a unit, e.g. 5s (ms, s, m or h)\n`]);
  });
});
