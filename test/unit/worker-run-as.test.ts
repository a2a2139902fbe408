import { expect } from 'chai';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { ConfigError } from '../../common/config.js';
import { setupCgroups, type CgroupsSetup } from '../../worker-node/src/cgroups.js';
import { Executor, type ExecSpec, type FinishedEvent } from '../../worker-node/src/executor.js';
import { detectNodeInfo } from '../../worker-node/src/node-info.js';
import { Outbox } from '../../worker-node/src/outbox.js';
import { lookupUser, TaskUsers, type TaskUser } from '../../worker-node/src/run-as.js';
import { Session } from '../../worker-node/src/session.js';
import { planSpawn } from '../../worker-node/src/task-spawn.js';
import { FakeManager } from '../support/fake-manager.js';

const isRoot = process.geteuid?.() === 0;
const out = (r: FinishedEvent): string => Buffer.from(r.stdoutTail).toString();

describe('worker run_as: the users tasks run as', function () {
  const fakeDb: Record<string, TaskUser> = {
    alice: { name: 'alice', uid: 1001, gid: 1001, groups: [1001, 27], home: '/home/alice' },
    bob: { name: 'bob', uid: 1002, gid: 1002, groups: [1002], home: '/home/bob' },
  };
  const lookup = (name: string): TaskUser | undefined => fakeDb[name];

  it('looks users up in the system user database, with their supplementary groups', () => {
    expect(lookupUser('root')).to.deep.include({ name: 'root', uid: 0, gid: 0, home: '/root' });
    expect(lookupUser('nobody')).to.deep.include({ uid: 65534 });
    expect(lookupUser('no-such-user-here')).to.equal(undefined);
  });

  it('takes run_as as the default and lets a task name only run_as or allowed_users', () => {
    const users = TaskUsers.fromConfig({ run_as: 'alice', allowed_users: ['bob'] }, lookup, 0);
    expect(users.runAs?.name).to.equal('alice');
    expect(users.resolve('')?.name).to.equal('alice');
    expect(users.resolve('bob')?.uid).to.equal(1002);
    expect(users.problem('bob')).to.equal(undefined);
    expect(users.problem('alice')).to.equal(undefined);
    expect(users.problem('')).to.equal(undefined);
    expect(users.problem('carol')).to.equal(`user "carol" is not in this worker's allowed_users`);
    expect(users.switchesTo(users.resolve('bob')!)).to.equal(true);
    // No run_as: the worker's own user, unchanged.
    expect(TaskUsers.fromConfig({ allowed_users: [] }, lookup, 0).resolve('')).to.equal(undefined);
  });

  it('refuses at start a user the system does not know, and another user when the worker is not root, naming the key', () => {
    expect(() => TaskUsers.fromConfig({ run_as: 'carol', allowed_users: [] }, lookup, 0)).to.throw(ConfigError, /^run_as: no user "carol" in the system's user database$/);
    expect(() => TaskUsers.fromConfig({ allowed_users: ['bob', 'dave'] }, lookup, 0)).to.throw(ConfigError, /^allowed_users: no user "dave"/);
    expect(() => TaskUsers.fromConfig({ run_as: 'bob', allowed_users: [] }, lookup, 1001)).to.throw(ConfigError, /^run_as: the worker runs as uid 1001, not root, so its tasks can run only as its own user, not "bob"$/);
    // Its own user is fine when not root.
    expect(TaskUsers.fromConfig({ run_as: 'alice', allowed_users: [] }, lookup, 1001).switches).to.equal(false);
  });

  it('spawns through setpriv after joining the cgroups, argv as arguments never in the script', () => {
    const plan = planSpawn(['/bin/echo', '$(id)', "a'b"], { path: '/usr/bin:/bin', joins: ['/cg/a/cgroup.procs'], user: fakeDb.alice, setpriv: '/usr/bin/setpriv' });
    expect('file' in plan && plan.file).to.equal('/bin/sh');
    const args = (plan as { args: string[] }).args;
    expect(args.slice(2)).to.deep.equal(['sched-task', '1', '/cg/a/cgroup.procs', '/usr/bin/setpriv', '--reuid=1001', '--regid=1001', '--init-groups', '--', '/bin/echo', '$(id)', "a'b"]);
    expect(args[1]).to.not.include('$(id)');
    // No setpriv: Node's uid/gid, and the cgroup is joined once the process exists.
    expect(planSpawn(['/bin/echo'], { path: '', joins: ['/cg/a/cgroup.procs'], user: fakeDb.alice })).to.deep.equal({ file: '/bin/echo', args: [], uid: 1001, gid: 1001, lateJoins: ['/cg/a/cgroup.procs'] });
    // Neither cgroups nor a user: the program itself.
    expect(planSpawn(['echo', 'x'], { path: '/bin', joins: [] })).to.deep.equal({ file: 'echo', args: ['x'] });
  });

  describe('real processes (root only)', function () {
    let dir: string;
    let executor: Executor;
    let setup: CgroupsSetup;
    const workerId = randomUUID();

    before(function () {
      if (!isRoot) {
        console.log('      skipped: not root, so tasks cannot run as another user');
        this.skip();
      }
      setup = setupCgroups({ mode: 'auto', workerId, runId: randomBytes(8).toString('hex'), memoryHeadroom: 0, maxPids: 4096 });
    });
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'worker-runas-'));
    });
    afterEach(async () => {
      await executor?.stopAll(0);
      rmSync(dir, { recursive: true, force: true });
    });
    after(async () => {
      await setup?.cgroups?.close();
    });

    async function run(users: TaskUsers, taskId: string, spec: ExecSpec): Promise<FinishedEvent> {
      executor = new Executor({ dataDir: dir, workerId, cgroups: setup.cgroups, users });
      expect(executor.start(taskId, 1, spec)).to.equal('started');
      return (await executor.wait(taskId, 1))!;
    }

    it('runs a task as run_as (nobody): its uid, HOME/USER/LOGNAME, and its log files owned by it', async () => {
      const users = TaskUsers.fromConfig({ run_as: 'nobody', allowed_users: [] });
      const r = await run(users, 'nb', { argv: ['sh', '-c', 'id -u; id -g; echo "$HOME $USER $LOGNAME"'], env: { FOO: 'x' } });
      expect(r.exitCode).to.equal(0);
      expect(out(r)).to.equal(`65534\n65534\n${lookupUser('nobody')!.home} nobody nobody\n`);
      const logs = executor.logPaths('nb', 1);
      expect(statSync(logs.stdout).uid).to.equal(65534);
      expect(statSync(logs.stderr).uid).to.equal(65534);
    });

    it('gives a task its user\'s supplementary groups (setpriv --init-groups), not the worker\'s', async function () {
      // A user of this machine with a supplementary group (postgres is in ssl-cert here).
      const user = ['postgres', 'nobody'].map(lookupUser).find((u) => u && u.groups.some((g) => g !== u.gid)) ?? lookupUser('nobody')!;
      const users = TaskUsers.fromConfig({ allowed_users: [user.name] });
      if (!users.setpriv) {
        console.log('      skipped: no setpriv on this machine');
        return this.skip();
      }
      const r = await run(users, 'groups', { argv: ['id', '-G'], user: user.name });
      expect(r.exitCode).to.equal(0);
      expect(out(r).trim().split(' ').map(Number).sort()).to.deep.equal([...user.groups].sort());
    });

    it('session: a task naming a user outside allowed_users is rejected with the reason', async () => {
      const users = TaskUsers.fromConfig({ allowed_users: ['nobody'] });
      executor = new Executor({ dataDir: dir, workerId, users });
      const manager = new FakeManager();
      const port = await manager.listen(0);
      const outbox = new Outbox(dir);
      const logger = pino({ level: 'silent' });
      const node = detectNodeInfo({ labels: {} });
      const session = new Session({ managers: [`127.0.0.1:${port}`], token: '', workerId: 'w-1', node, executor, outbox, logger, reconnectIntervalMs: 100, cancelGraceMs: 1000 });
      try {
        session.start();
        await manager.next('hello');
        manager.send({ case: 'welcome', value: { sessionId: 's1', pingIntervalMs: 0 } });
        manager.send({ case: 'startTask', value: { taskId: 'u1', attempt: 1, spec: { argv: ['id', '-u'], user: 'daemon' } } });
        expect((await manager.next('rejected')).reason).to.equal(`user "daemon" is not in this worker's allowed_users`);
        manager.send({ case: 'startTask', value: { taskId: 'u2', attempt: 1, spec: { argv: ['id', '-u'], user: 'nobody' } } });
        const finished = await manager.next('finished');
        expect(finished.task).to.deep.include({ taskId: 'u2', attempt: 1 });
        expect(Buffer.from(finished.stdoutTail).toString()).to.equal('65534\n');
      } finally {
        await session.stop('test over');
        await outbox.flush();
        manager.stop();
      }
    });
  });
});
