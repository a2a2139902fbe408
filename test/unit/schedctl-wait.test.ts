// schedctl tasks wait, tasks run --wait's shared wait and tasks cancel, against
// a fake manager whose tasks the test changes (test/support/fake-management.ts).
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { TaskState } from '../../proto/gen/schedapi/v1/types_pb.js';
import { resumeCommand } from '../../schedctl/src/commands/tasks-wait.js';
import { FakeManagement, runSchedctl, taskId } from '../support/fake-management.js';
import { until } from '../support/until.js';

describe('schedctl tasks wait', () => {
  let fake: FakeManagement;
  beforeEach(async () => {
    fake = new FakeManagement();
    await fake.start();
  });
  afterEach(() => fake.stop());
  const run = (...args: string[]) => runSchedctl(fake.address, args);

  it('exits with the first failing exit code in the order given, one line per task as it ends', async () => {
    const [a, b, c] = [taskId(), taskId(), taskId()];
    for (const id of [a, b, c]) fake.set({ id, state: TaskState.SCHEDULED });
    const waiting = run('tasks', 'wait', a, b, c);
    await until('the watch is open', () => fake.watching === 1);
    fake.set({ id: c, state: TaskState.DONE, exitCode: 3 });
    fake.set({ id: a, state: TaskState.DONE, exitCode: 0 });
    fake.set({ id: b, state: TaskState.DONE, exitCode: 7 });
    const r = await waiting;
    expect(r.code).to.equal(7);
    expect(r.out).to.equal('');
    expect(r.err).to.equal(`schedctl: task ${c} exited with 3\nschedctl: task ${a} succeeded\nschedctl: task ${b} exited with 7\n`);
  });

  it('exits 0 when every task succeeded and 125 when any is dead, whatever the others did', async () => {
    const [a, b] = [taskId(), taskId()];
    fake.set({ id: a, state: TaskState.DONE, exitCode: 0 });
    fake.set({ id: b, state: TaskState.DONE, exitCode: 0 });
    expect((await run('tasks', 'wait', a, b)).code).to.equal(0);
    fake.set({ id: a, state: TaskState.DONE, exitCode: 4 });
    fake.set({ id: b, state: TaskState.DEAD, deadReason: 'worker-lost' });
    const r = await run('tasks', 'wait', a, b);
    expect(r.code).to.equal(125);
    expect(r.err).to.include(`schedctl: task ${b} is dead: worker-lost\n`);
  });

  it('takes short ids, resolving them before the watch (which names full ids)', async () => {
    const a = taskId();
    fake.set({ id: a, state: TaskState.DONE, exitCode: 5 });
    const r = await run('tasks', 'wait', a.slice(-8));
    expect(r.code).to.equal(5);
    expect(fake.watches.at(-1)?.ids).to.deep.equal([a]);
  });

  it('fails with the manager\'s message, opening no watch, when an id names no task', async () => {
    const r = await run('tasks', 'wait', 'nosuchtask');
    expect(r.code).to.equal(1);
    expect(r.err).to.match(/task "nosuchtask" not found/);
    expect(fake.watches).to.have.length(0);
  });

  it('--group waits for every member, in the group\'s order, and -o json prints them', async () => {
    const g = 'group-1';
    const ids = [taskId(), taskId(), taskId()].sort();
    for (const id of ids) fake.set({ id, groupId: g, state: TaskState.DONE, exitCode: 0 });
    fake.set({ id: taskId(), groupId: 'other', state: TaskState.PENDING });
    const r = await run('-o', 'json', 'tasks', 'wait', '--group', g);
    expect(r.code).to.equal(0);
    expect(fake.lists.at(-1)).to.include({ groupId: g, oldestFirst: true });
    expect((JSON.parse(r.out) as { tasks: Array<{ id: string }> }).tasks.map((t) => t.id)).to.deep.equal(ids);
  });

  it('re-attaches when the watch stream is lost (a manager restart) and still gets the end', async () => {
    const a = taskId();
    fake.set({ id: a, state: TaskState.SCHEDULED });
    fake.watchFailures.push({ code: grpc.status.UNAVAILABLE, details: 'management node is shutting down' });
    const waiting = run('tasks', 'wait', a);
    await until('the second watch is open', () => fake.watching === 1);
    expect(fake.watches).to.have.length(2);
    fake.set({ id: a, state: TaskState.DONE, exitCode: 2 });
    expect((await waiting).code).to.equal(2);
  });

  it('says why a task is pending, and exits 125 with the reason when no worker could ever fit it', async function () {
    this.timeout(20_000);
    const a = taskId();
    fake.set({ id: a, state: TaskState.PENDING, pendingReason: '0/2 workers fit: 2 insufficient memory; no connected worker could ever fit it' });
    const r = await run('tasks', 'wait', a);
    expect(r.code).to.equal(125);
    expect(r.err).to.include(`schedctl: task ${a} pending: 0/2 workers fit`);
    expect(r.err).to.include(`schedctl: task ${a} cannot run:`);
  });

  it('names the rest for the resume: whole groups by --group, other tasks by id', () => {
    const groups = new Map([['t1', 'g1'], ['t2', 'g1']]);
    expect(resumeCommand(['t1', 't3', 't2'], groups)).to.equal('schedctl tasks wait t3 --group g1');
    expect(resumeCommand(['t3'])).to.equal('schedctl tasks wait t3');
  });

  it('on Ctrl-C says what it waited for and how to wait again, cancels nothing, and exits 130', async function () {
    this.timeout(60_000);
    const [a, b] = [taskId(), taskId()];
    fake.set({ id: a, state: TaskState.SCHEDULED });
    fake.set({ id: b, state: TaskState.DONE, exitCode: 0 });
    const main = fileURLToPath(new URL('../../schedctl/src/main.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', main, '--manager', fake.address, 'tasks', 'wait', a, b], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await until('the watch is open', () => fake.watching === 1, 30_000);
      await until('b is reported', () => err.includes(`task ${b} succeeded`), 30_000);
      child.kill('SIGINT');
      expect(await exited).to.equal(130);
    } finally {
      child.kill('SIGKILL');
    }
    expect(err).to.include('interrupted; nothing was cancelled. Still waiting for 1 task:');
    expect(err).to.include(`  ${a} running\n`);
    expect(err).to.include(`wait again with: schedctl tasks wait ${a}\n`);
    expect(fake.cancels).to.have.length(0);
    expect(fake.tasks.get(a)?.state).to.equal(TaskState.SCHEDULED);
  });
});

describe('schedctl tasks run --wait (the shared wait)', () => {
  let fake: FakeManagement;
  beforeEach(async () => {
    fake = new FakeManagement();
    await fake.start();
  });
  afterEach(() => fake.stop());

  it('--count --wait exits with the first failing member and names the group to resume', async () => {
    const waiting = runSchedctl(fake.address, ['tasks', 'run', '--count', '3', '--wait', '--', 'true']);
    await until('the watch is open', () => fake.watching === 1);
    const ids = fake.watches[0]!.ids;
    expect(ids).to.have.length(3);
    fake.set({ id: ids[2]!, state: TaskState.DONE, exitCode: 9 });
    fake.set({ id: ids[1]!, state: TaskState.DONE, exitCode: 4 });
    fake.set({ id: ids[0]!, state: TaskState.DONE, exitCode: 0 });
    const r = await waiting;
    expect(r.code).to.equal(4);
    expect(r.out.trimEnd().split('\n')).to.deep.equal(ids);
  });
});

describe('schedctl tasks cancel', () => {
  let fake: FakeManagement;
  beforeEach(async () => {
    fake = new FakeManagement();
    await fake.start();
  });
  afterEach(() => fake.stop());
  const run = (...args: string[]) => runSchedctl(fake.address, args);

  it('cancels every valid id in one request, reports each unknown one from the response, and exits 1', async () => {
    const [a, b] = [taskId(), taskId()];
    fake.set({ id: a, state: TaskState.PENDING });
    fake.set({ id: b, state: TaskState.PENDING });
    const r = await run('tasks', 'cancel', a, 'nosuchtask', b);
    expect(r.code).to.equal(1);
    expect(fake.cancels).to.have.length(1);
    expect(r.err).to.equal('schedctl: nosuchtask: task "nosuchtask" not found\n');
    expect(r.out).to.equal(`${a} cancelled\n${b} cancelled\n`);
    expect(fake.tasks.get(a)?.state).to.equal(TaskState.DEAD);
  });

  it('-o json prints the response, errors included', async () => {
    const a = taskId();
    fake.set({ id: a, state: TaskState.PENDING });
    const r = await run('-o', 'json', 'tasks', 'cancel', a, 'nosuchtask');
    expect(r.code).to.equal(1);
    const res = JSON.parse(r.out) as { tasks: Array<{ id: string; deadReason: string }>; errors: Array<{ id: string }> };
    expect(res.tasks.map((t) => [t.id, t.deadReason])).to.deep.equal([[a, 'cancelled']]);
    expect(res.errors.map((e) => e.id)).to.deep.equal(['nosuchtask']);
  });

  it('--all cancels the tasks its filters select, in batches, and leaves the others', async () => {
    const group = Array.from({ length: 1200 }, () => fake.set({ id: taskId(), groupId: 'g', state: TaskState.PENDING }).id);
    const other = fake.set({ id: taskId(), groupId: 'h', state: TaskState.PENDING }).id;
    const r = await run('tasks', 'cancel', '--all', '--group', 'g', '--state', 'pending');
    expect(r.code).to.equal(0);
    expect(fake.cancels.map((c) => c.ids.length)).to.deep.equal([500, 500, 200]);
    expect(group.every((id) => fake.tasks.get(id)?.state === TaskState.DEAD)).to.equal(true);
    expect(fake.tasks.get(other)?.state).to.equal(TaskState.PENDING);
    expect(r.out.trimEnd().split('\n')).to.have.length(1200);
  });

  it('refuses --all with no filter unless --yes, and filters without --all', async () => {
    const a = fake.set({ id: taskId(), state: TaskState.PENDING }).id;
    const bare = await run('tasks', 'cancel', '--all');
    expect(bare.code).to.equal(2);
    expect(bare.err).to.match(/--all with no --group, --state or --worker cancels every task that has not ended; add --yes/);
    const stray = await run('tasks', 'cancel', '--group', 'g');
    expect(stray.code).to.equal(2);
    expect(fake.cancels).to.have.length(0);
    const yes = await run('tasks', 'cancel', '--all', '--yes');
    expect(yes.code).to.equal(0);
    expect(fake.tasks.get(a)?.state).to.equal(TaskState.DEAD);
  });

  it('waits for a running task to stop, unless --no-wait', async () => {
    const a = fake.set({ id: taskId(), state: TaskState.SCHEDULED }).id;
    expect((await run('tasks', 'cancel', '--no-wait', a)).out).to.equal(`${a} cancelling\n`);
    const waiting = run('tasks', 'cancel', a);
    await until('the watch is open', () => fake.watching === 1);
    fake.set({ id: a, state: TaskState.DEAD, deadReason: 'cancelled', signal: 'SIGTERM' });
    expect((await waiting).out).to.equal(`${a} cancelled (SIGTERM)\n`);
  });
});
