// schedctl end to end within one process: runCli against a real gRPC server
// that plays the management node with canned answers.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import type { GenService } from '@bufbuild/protobuf/codegenv2';
import { serviceDefinition, type ServiceHandlers } from '../../common/grpc-service.js';
import { NotFoundError, toStatus } from '../../common/errors.js';
import { ManagementService, type RunTaskRequest } from '../../proto/gen/sched/v1/management_pb.js';
import { TaskSchema, TaskState, WorkerState, type Task } from '../../proto/gen/sched/v1/types_pb.js';
import { runCli } from '../../schedctl/src/cli.js';

type MethodsOf<S> = S extends GenService<infer M> ? M : never;

const PAGE = 40;

/** The fake manager: `exit N` finishes with N, `dead` dies, `flaky` drops the first watch stream. */
class FakeManager {
  readonly server = new grpc.Server();
  address = '';
  runs: RunTaskRequest[] = [];
  tasks = new Map<string, Task>();
  watchOpens = 0;

  async start(): Promise<void> {
    const handlers: ServiceHandlers<MethodsOf<typeof ManagementService>> = {
      runTask: (call, cb) => {
        this.runs.push(call.request);
        const task = create(TaskSchema, { id: `t-${this.runs.length}`, spec: call.request.spec, state: TaskState.PENDING, createdUnixMs: BigInt(Date.now()) });
        this.tasks.set(task.id, task);
        cb(null, { $typeName: 'sched.v1.RunTaskResponse', task });
      },
      cancelTask: (call, cb) => {
        const tasks = call.request.ids.map((id) => {
          const task = create(TaskSchema, { ...this.tasks.get(id)!, state: TaskState.DEAD, deadReason: 'cancelled' });
          this.tasks.set(id, task);
          return task;
        });
        cb(null, { $typeName: 'sched.v1.CancelTaskResponse', tasks });
      },
      getTask: (call, cb) => {
        const task = this.tasks.get(call.request.id);
        if (!task) return cb(toStatus(new NotFoundError('task', call.request.id)));
        cb(null, { $typeName: 'sched.v1.GetTaskResponse', task });
      },
      listTasks: (call, cb) => {
        const all = [...this.tasks.values()].filter((t) => t.id > call.request.pageToken).sort((a, b) => (a.id < b.id ? -1 : 1));
        const page = all.slice(0, Math.min(call.request.limit || PAGE, PAGE));
        const more = all.length > page.length;
        cb(null, { $typeName: 'sched.v1.ListTasksResponse', tasks: page, nextPageToken: more ? page.at(-1)!.id : '' });
      },
      watchTasks: (call) => {
        this.watchOpens++;
        const task = this.tasks.get(call.request.ids[0] ?? '')!;
        const argv = task.spec?.argv ?? [];
        call.write({ $typeName: 'sched.v1.WatchTasksResponse', task });
        if (argv[0] === 'flaky' && this.watchOpens === 1) {
          call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'manager restarting' });
          return;
        }
        setTimeout(() => {
          const done = create(TaskSchema, { ...task, workerId: 'w-1', startedUnixMs: 1n, finishedUnixMs: 2n });
          if (argv[0] === 'dead') Object.assign(done, { state: TaskState.DEAD, deadReason: 'ack-timeout' });
          else Object.assign(done, { state: TaskState.DONE, exitCode: Number(argv[1] ?? 0) });
          call.write({ $typeName: 'sched.v1.WatchTasksResponse', task: { ...task, state: TaskState.SCHEDULED } });
          call.write({ $typeName: 'sched.v1.WatchTasksResponse', task: done });
        }, 20);
      },
      listWorkers: (_call, cb) =>
        cb(null, {
          $typeName: 'sched.v1.ListWorkersResponse',
          workers: [
            { $typeName: 'sched.v1.Worker', id: 'w-1', address: '10.0.0.1:4000', state: WorkerState.CONNECTED, draining: true, labels: {}, version: '', connectedUnixMs: 0n, lastSeenUnixMs: 0n, runningTasks: 2 },
          ],
        }),
      getWorker: (call, cb) => cb(toStatus(new NotFoundError('worker', call.request.id))),
      status: (_call, cb) =>
        cb(null, { $typeName: 'sched.v1.StatusResponse', version: '9.9.9', store: 'lmdb', workersConnected: 1, workersTotal: 2, tasksByState: { done: 4 } }),
    };
    this.server.addService(serviceDefinition(ManagementService), handlers as unknown as grpc.UntypedServiceImplementation);
    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    this.address = `127.0.0.1:${port}`;
  }

  stop(): void {
    this.server.forceShutdown();
  }
}

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(args, { out: (s) => void (out += s), err: (s) => void (err += s), isTTY: false, env: {} });
  return { code, out, err };
}

describe('schedctl CLI', () => {
  const fake = new FakeManager();
  let m: string[];
  before(async () => {
    await fake.start();
    m = ['--manager', fake.address];
  });
  after(() => fake.stop());

  describe('without a manager', () => {
    it('prints the usage text and exits 0 for no arguments and for help', async () => {
      for (const args of [[], ['help'], ['--help']]) {
        const r = await run(args);
        expect(r.code, args.join(' ')).to.equal(0);
        expect(r.out).to.include('schedctl - is the utility that schedules running of arbitrary linux jobs');
        expect(r.out).to.include('schedctl [options] [target] [target cmd] [target cmd parameters]');
        expect(r.out).to.match(/workers\s+remote servers/);
        expect(r.err).to.equal('');
      }
    });

    it("prints a target's commands for `<target> help`, `<target> --help` and a bare target", async () => {
      for (const args of [['tasks', 'help'], ['tasks', '--help'], ['tasks'], ['help', 'tasks']]) {
        const r = await run(args);
        expect(r.code, args.join(' ')).to.equal(0);
        expect(r.out).to.match(/run \[options\] <command\.\.\.>/);
        expect(r.out).to.match(/ls \[options\]/);
      }
      expect((await run(['workers', 'help'])).out).to.match(/show <id>/);
    });

    it('names an unknown command and exits 2', async () => {
      const r = await run(['frobnicate']);
      expect(r.code).to.equal(2);
      expect(r.err).to.match(/^schedctl: unknown command 'frobnicate'/);
      expect((await run(['tasks', 'nope'])).code).to.equal(2);
    });

    it('exits 2 naming --env when a pair has no =, and when the command is missing', async () => {
      const bad = await run([...m, 'tasks', 'run', '--env', 'FOO', '--', 'true']);
      expect(bad.code).to.equal(2);
      expect(bad.err).to.include('--env');
      const none = await run([...m, 'tasks', 'run']);
      expect(none.code).to.equal(2);
      expect(none.err).to.include("missing required argument 'command'");
      expect(fake.runs).to.have.length(0);
    });

    it('exits 2 with the ConfigError message for a missing config file', async () => {
      const r = await run(['-c', '/nonexistent/schedctl.yaml', 'status']);
      expect(r.code).to.equal(2);
      expect(r.err).to.equal('schedctl: /nonexistent/schedctl.yaml: cannot read config: no such file\n');
    });

    it('exits 1 with one line when the manager cannot be reached', async () => {
      const r = await run(['--manager', '127.0.0.1:1', 'workers', 'ls']);
      expect(r.code).to.equal(1);
      expect(r.err).to.match(/^schedctl: cannot reach management node at 127\.0\.0\.1:1/);
      expect(r.err.trimEnd().split('\n')).to.have.length(1);
    });
  });

  describe('with a manager', () => {
    it('runs a task: sends argv, env and cwd and prints the id alone', async () => {
      const r = await run([...m, 'tasks', 'run', '-e', 'A=1', '--env', 'B=x=y', '--cwd', '/tmp', '--', 'sh', '-c', 'echo $A', '-o', 'x']);
      expect(r).to.deep.include({ code: 0, err: '' });
      expect(r.out).to.match(/^t-\d+\n$/);
      const req = fake.runs.at(-1)!;
      expect(req.spec?.argv).to.deep.equal(['sh', '-c', 'echo $A', '-o', 'x']);
      expect(req.spec?.env).to.deep.equal({ A: '1', B: 'x=y' });
      expect(req.spec?.cwd).to.equal('/tmp');
    });

    it("--wait exits with the task's exit code", async () => {
      const r = await run([...m, 'tasks', 'run', '--wait', '--', 'exit', '3']);
      expect(r.code).to.equal(3);
      expect(r.out).to.match(/^t-\d+\n$/);
      expect((await run([...m, 'tasks', 'run', '--wait', '--', 'exit', '0'])).code).to.equal(0);
    });

    it('--wait exits 125 and says why when the task is dead', async () => {
      const r = await run([...m, 'tasks', 'run', '--wait', '--', 'dead']);
      expect(r.code).to.equal(125);
      expect(r.err).to.match(/^schedctl: task t-\d+ is dead: ack-timeout\n$/);
    });

    it('--wait reopens the watch when the stream breaks', async () => {
      fake.watchOpens = 0;
      const r = await run([...m, 'tasks', 'run', '--wait', '--', 'flaky', '7']);
      expect(r.code).to.equal(7);
      expect(fake.watchOpens).to.equal(2);
    });

    it('--wait -o json prints the finished task', async () => {
      const r = await run([...m, '-o', 'json', 'tasks', 'run', '--wait', '--', 'exit', '4']);
      expect(r.code).to.equal(4);
      expect(JSON.parse(r.out)).to.include({ state: 'TASK_STATE_DONE', exitCode: 4 });
    });

    it('reports NOT_FOUND with the server message and exits 1', async () => {
      const r = await run([...m, 'tasks', 'show', 'nope']);
      expect(r.code).to.equal(1);
      expect(r.err).to.equal('schedctl: task "nope" not found\n');
    });

    it('shows a task', async () => {
      const r = await run([...m, 'tasks', 'show', 't-1']);
      expect(r.code).to.equal(0);
      expect(r.out).to.match(/^ID:\s+t-1$/m);
      expect(r.out).to.match(/^Command:\s+sh -c 'echo \$A' -o x$/m);
    });

    it('lists tasks across pages up to --limit and hints when some were left out', async () => {
      while (fake.tasks.size < 2 * PAGE + 5) (await run([...m, 'tasks', 'run', '--', 'true'])).code;
      const all = await run([...m, '-o', 'json', 'tasks', 'ls', '--limit', '0']);
      expect(JSON.parse(all.out).tasks).to.have.length(fake.tasks.size);
      const some = await run([...m, 'tasks', 'ls', '--limit', String(PAGE + 3)]);
      const lines = some.out.trimEnd().split('\n');
      expect(lines[0]).to.match(/^ID\s+STATE\s+WORKER\s+EXIT\s+COMMAND\s+AGE\s+DURATION$/);
      expect(lines).to.have.length(PAGE + 4);
      expect(some.err).to.include('--limit');
    });

    it('lists workers as a table', async () => {
      const r = await run([...m, 'workers', 'ls']);
      const lines = r.out.trimEnd().split('\n');
      expect(lines[0]).to.match(/^ID\s+ADDRESS\s+STATE\s+HOSTNAME\s+CPU\s+MEM\s+TASKS\s+LAST SEEN$/);
      expect(lines[1]!.split(/\s+/)).to.deep.equal(['w-1', '10.0.0.1:4000', 'connected,draining', '-', '-', '-', '2', '-']);
    });

    it('prints status in all three formats', async () => {
      const table = await run([...m, 'status']);
      expect(table.out).to.match(/^Store:\s+lmdb$/m);
      expect(table.out).to.match(/^Tasks done:\s+4$/m);
      expect(JSON.parse((await run([...m, '-o', 'json', 'status'])).out)).to.include({ version: '9.9.9', workersTotal: 2 });
      expect((await run([...m, 'status', '-o', 'yaml'])).out).to.include('store: lmdb');
    });

    it('exits promptly as a process once a --wait finishes (client closed)', async function () {
      this.timeout(20_000);
      const main = fileURLToPath(new URL('../../schedctl/src/main.ts', import.meta.url));
      const started = Date.now();
      const code = await new Promise<number | null>((resolve) => {
        const child = execFile(process.execPath, ['--import', 'tsx', main, ...m, 'tasks', 'run', '--wait', '--', 'exit', '5'], () => undefined);
        child.on('exit', (c) => resolve(c));
      });
      expect(code).to.equal(5);
      expect(Date.now() - started).to.be.below(10_000);
    });
  });
});
