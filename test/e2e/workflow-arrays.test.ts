// Task arrays with the built binaries: tasks run --count N --max-parallel K on two
// workers with room for more. Every task appends start and end marks to one file (appends
// land in the order they happen), so the file shows how many ran at once; each mark carries
// the task's {index} and the SCHED_* variables it was given. Also across a kill -9 of the
// manager: the counts come back from the store.
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, run, startLocalManager, startWorker, waitFor, type Daemon, type ManagerHandle } from '../support/processes.js';

interface Mark {
  kind: 'start' | 'end';
  index: number;
  env: { index: string; count: string; group: string; attempt: string };
}

function readMarks(file: string): Mark[] {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [kind, index, envIndex, count, group, attempt] = line.split(' ');
      return { kind: kind as Mark['kind'], index: Number(index), env: { index: envIndex!, count: count!, group: group!, attempt: attempt! } };
    });
}

/** The most tasks between their start and end marks at once. */
function mostAtOnce(marks: Mark[]): number {
  let open = 0;
  let most = 0;
  for (const m of marks) {
    open += m.kind === 'start' ? 1 : -1;
    most = Math.max(most, open);
  }
  return most;
}

describe('e2e: task arrays (--count, --max-parallel, SCHED_* and {index})', function () {
  this.timeout(180_000);
  let dir: string;
  let manager: ManagerHandle;
  const daemons: Daemon[] = [];
  const ctl = (...args: string[]) => run(BIN.schedctl, ['--manager', manager.address, ...args], { timeoutMs: 90_000 });
  const startTheManager = async (port?: number) => {
    manager = await startLocalManager(dir, '', port);
    daemons.push(manager.daemon);
  };
  /** A task that marks its start, works a while, and marks its end, into file. */
  const marking = (file: string, seconds: number) =>
    `echo "start {index} $SCHED_TASK_INDEX $SCHED_TASK_COUNT $SCHED_GROUP_ID $SCHED_ATTEMPT" >> ${file}; sleep ${seconds}; ` +
    `echo "end {index} $SCHED_TASK_INDEX $SCHED_TASK_COUNT $SCHED_GROUP_ID $SCHED_ATTEMPT" >> ${file}`;
  const groupOf = async (id: string): Promise<string> => (JSON.parse((await ctl('-o', 'json', 'tasks', 'show', id)).stdout) as { groupId: string }).groupId;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sched-arrays-'));
    await startTheManager();
    // Each worker has room for 8 default tasks (250m): 16 together, far more than any limit here.
    const room = 'capacity: {cpu: 2, memory: 4Gi}\nreconnect_max: 300ms\n';
    daemons.push(await startWorker(manager.address, dir, room, 'w1'));
    daemons.push(await startWorker(manager.address, dir, room, 'w2'));
    await waitFor('both workers connected', async () => ((await ctl('workers', 'ls')).stdout.match(/\bconnected\b/g) ?? []).length === 2);
  });

  after(async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('--count 12 --max-parallel 3: never more than 3 at once, all 12 run once, each told its index and group', async () => {
    const marks = join(dir, 'marks-12');
    writeFileSync(marks, '');
    const r = await ctl('tasks', 'run', '--count', '12', '--max-parallel', '3', '--spread', '--shell', '--', marking(marks, 1));
    expect(r.code, r.stderr).to.equal(0);
    const ids = r.stdout.trim().split('\n');
    expect(ids).to.have.length(12);
    const group = await groupOf(ids[0]!);
    // While the first three run, the others wait and say why.
    await waitFor('a member pending at the group limit', async () => {
      const t = JSON.parse((await ctl('-o', 'json', 'tasks', 'show', ids[11]!)).stdout) as { state: string; pendingReason?: string };
      return t.pendingReason === 'group at its limit: 3 of 3 running';
    });
    const show = await ctl('tasks', 'show', ids[5]!);
    expect(show.stdout).to.match(new RegExp(`Group:\\s+${group} \\(index 5 of 12, at most 3 at once\\)`));
    const waited = await ctl('tasks', 'wait', '--group', group);
    expect(waited.code, waited.stderr).to.equal(0);
    const all = readMarks(marks);
    expect(all).to.have.length(24);
    // (That 3 were live at once the pending reason above showed.)
    expect(mostAtOnce(all)).to.be.at.most(3);
    for (const kind of ['start', 'end'] as const) {
      expect(all.filter((m) => m.kind === kind).map((m) => m.index).sort((a, b) => a - b)).to.deep.equal([...Array(12).keys()]);
    }
    for (const m of all) expect(m.env).to.deep.equal({ index: String(m.index), count: '12', group, attempt: '1' });
    // Spread over both workers, which had room for all 12: the limit held the others back.
    const workers = new Set(await Promise.all(ids.map(async (id) => (JSON.parse((await ctl('-o', 'json', 'tasks', 'show', id)).stdout) as { workerId: string }).workerId)));
    expect(workers.size).to.equal(2);
  });

  it('{{index}} is a literal {index}; a lone task keeps its braces and gets no group variables', async () => {
    const out = join(dir, 'literal');
    const r = await ctl('tasks', 'run', '--count', '2', '--wait', '--', '/bin/sh', '-c', `echo "{index} {{index}} $SCHED_TASK_INDEX" >> ${out}`);
    expect(r.code, r.stderr).to.equal(0);
    expect(readFileSync(out, 'utf8').trim().split('\n').sort()).to.deep.equal(['0 {index} 0', '1 {index} 1']);
    const lone = join(dir, 'lone');
    const s = await ctl('tasks', 'run', '--wait', '--', '/bin/sh', '-c', `echo "{index} [$SCHED_TASK_INDEX] [$SCHED_GROUP_ID] $SCHED_ATTEMPT" > ${lone}`);
    expect(s.code, s.stderr).to.equal(0);
    expect(readFileSync(lone, 'utf8').trim()).to.equal('{index} [] [] 1');
  });

  it("a task file's max_parallel limits its group; tasks update --max-parallel changes every member", async () => {
    const file = join(dir, 'tasks.yaml');
    writeFileSync(file, 'tasks:\n  - argv: [sleep, "60"]\n    count: 4\n    max_parallel: 1\n');
    const r = await ctl('tasks', 'run', '-f', file);
    expect(r.code, r.stderr).to.equal(0);
    const ids = r.stdout.trim().split('\n');
    expect(ids).to.have.length(4);
    type Shown = { state: string; pendingReason?: string; spec: { maxParallel?: number } };
    const show = async (id: string) => JSON.parse((await ctl('-o', 'json', 'tasks', 'show', id)).stdout) as Shown;
    const states = async () => Promise.all(ids.map(async (id) => (await show(id)).state));
    await waitFor('one running, three waiting at the limit', async () => {
      const s = await states();
      return s.filter((x) => x === 'TASK_STATE_SCHEDULED').length === 1 && (await show(ids[3]!)).pendingReason === 'group at its limit: 1 of 1 running';
    });
    const u = await ctl('tasks', 'update', ids[2]!, '--max-parallel', '4');
    expect(u.code, u.stderr).to.equal(0);
    await waitFor('all four running', async () => (await states()).every((x) => x === 'TASK_STATE_SCHEDULED'));
    for (const id of ids) expect((await show(id)).spec.maxParallel).to.equal(4);
    const c = await ctl('tasks', 'cancel', ...ids);
    expect(c.code, c.stderr).to.equal(0);
  });

  it('holds the limit across a kill -9 of the manager: the counts come back from the store', async () => {
    const marks = join(dir, 'marks-restart');
    writeFileSync(marks, '');
    const r = await ctl('tasks', 'run', '--count', '8', '--max-parallel', '2', '--shell', '--', marking(marks, 1.5));
    expect(r.code, r.stderr).to.equal(0);
    const ids = r.stdout.trim().split('\n');
    const group = await groupOf(ids[0]!);
    await waitFor('the first two running', () => readMarks(marks).filter((m) => m.kind === 'start').length >= 2);
    await manager.daemon.kill9();
    await startTheManager(manager.port);
    const waited = await ctl('tasks', 'wait', '--group', group);
    expect(waited.code, waited.stderr).to.equal(0);
    const all = readMarks(marks);
    expect(mostAtOnce(all)).to.be.at.most(2);
    expect(all.filter((m) => m.kind === 'start').map((m) => m.index).sort((a, b) => a - b)).to.deep.equal([...Array(8).keys()]);
    expect(all.filter((m) => m.kind === 'end')).to.have.length(8);
  });
});
