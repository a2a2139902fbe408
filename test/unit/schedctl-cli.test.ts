// schedctl end to end within one process: runCli against a real gRPC server
// that plays the management node with canned answers.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import type { GenService } from '@bufbuild/protobuf/codegenv2';
import { serviceDefinition, type ServiceHandlers } from '../../common/grpc-service.js';
import { NotFoundError, toStatus } from '../../common/errors.js';
import {
  DrainWorkerResponseSchema,
  ManagementService,
  RunTaskResponseSchema,
  StatusResponseSchema,
  TaskLogsResponseSchema,
  type RunTaskRequest,
} from '../../proto/gen/schedapi/v1/management_pb.js';
import { TaskSchema, TaskState, WorkerSchema, WorkerState, type Task } from '../../proto/gen/schedapi/v1/types_pb.js';
import { runCli } from '../../schedctl/src/cli.js';

type MethodsOf<S> = S extends GenService<infer M> ? M : never;

const PAGE = 40;

/**
 * The fake manager: `exit N` finishes with N, `dead` dies, `flaky` drops the
 * first watch stream; `exits A B C` finishes the i-th task of a --count run
 * with the i-th code, where `dead` dies. Emits 'final' with a task's id once
 * it has sent that task's final state on a watch stream.
 */
class FakeManager extends EventEmitter<{ final: [string] }> {
  readonly server = new grpc.Server();
  address = '';
  runs: RunTaskRequest[] = [];
  tasks = new Map<string, Task>();
  /** Position of each task in its RunTask (for `exits`). */
  index = new Map<string, number>();
  created = 0;
  watchOpens = 0;
  watched: string[][] = [];

  async start(): Promise<void> {
    const handlers: Partial<ServiceHandlers<MethodsOf<typeof ManagementService>>> = {
      runTask: (call, cb) => {
        this.runs.push(call.request);
        const spec = call.request.spec;
        const count = call.request.count || 1;
        const groupId = count > 1 ? `g-${this.runs.length}` : '';
        // A task with constraints stays pending here, and says why.
        const pendingReason = Object.entries(spec?.constraints ?? {})
          .map(([k, v]) => `0/1 workers fit: 1 missing label ${k}=${v}`)
          .join('');
        const tasks = Array.from({ length: count }, (_, i) => {
          const task = create(TaskSchema, {
            id: `t-${++this.created}`,
            spec,
            state: TaskState.PENDING,
            createdUnixMs: BigInt(Date.now()),
            groupId,
            pendingReason,
          });
          this.tasks.set(task.id, task);
          this.index.set(task.id, i);
          return task;
        });
        // Like the management node: `tasks` only when more than one was made.
        cb(null, create(RunTaskResponseSchema, { task: tasks[0], tasks: count > 1 ? tasks : [], groupId }));
      },
      cancelTask: (call, cb) => {
        const tasks = call.request.ids.map((id) => {
          const task = create(TaskSchema, { ...this.tasks.get(id)!, state: TaskState.DEAD, deadReason: 'cancelled' });
          this.tasks.set(id, task);
          return task;
        });
        cb(null, { $typeName: 'schedapi.v1.CancelTaskResponse', tasks, errors: [] });
      },
      getTask: (call, cb) => {
        const task = this.tasks.get(call.request.id);
        if (!task) return cb(toStatus(new NotFoundError('task', call.request.id)));
        cb(null, { $typeName: 'schedapi.v1.GetTaskResponse', task });
      },
      listTasks: (call, cb) => {
        const all = [...this.tasks.values()]
          .filter((t) => t.id > call.request.pageToken)
          .sort((a, b) => (a.id < b.id ? -1 : 1))
          .filter((t) => !call.request.groupId || t.groupId === call.request.groupId);
        const page = all.slice(0, Math.min(call.request.limit || PAGE, PAGE));
        const more = all.length > page.length;
        cb(null, { $typeName: 'schedapi.v1.ListTasksResponse', tasks: page, nextPageToken: more ? page.at(-1)!.id : '', total: all.length, revision: 0n });
      },
      watchTasks: (call) => {
        this.watchOpens++;
        this.watched.push([...call.request.ids]);
        const tasks = call.request.ids.map((id) => this.tasks.get(id)!);
        for (const task of tasks) call.write({ $typeName: 'schedapi.v1.WatchTasksResponse', task });
        if (tasks[0]?.spec?.argv[0] === 'flaky' && this.watchOpens === 1) {
          call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'manager restarting' });
          return;
        }
        setTimeout(() => {
          for (const task of tasks) {
            const argv = task.spec?.argv ?? [];
            const outcome = argv[0] === 'exits' ? (argv[1 + this.index.get(task.id)!] ?? '0') : argv[0] === 'dead' ? 'dead' : (argv[1] ?? '0');
            const done = create(TaskSchema, { ...task, workerId: 'w-1', startedUnixMs: 1n, finishedUnixMs: 2n });
            if (outcome === 'dead') Object.assign(done, { state: TaskState.DEAD, deadReason: 'ack-timeout' });
            else Object.assign(done, { state: TaskState.DONE, exitCode: Number(outcome) });
            call.write({ $typeName: 'schedapi.v1.WatchTasksResponse', task: { ...task, state: TaskState.SCHEDULED } });
            call.write({ $typeName: 'schedapi.v1.WatchTasksResponse', task: done });
            this.emit('final', task.id);
          }
        }, 20);
      },
      listWorkers: (_call, cb) =>
        cb(null, {
          $typeName: 'schedapi.v1.ListWorkersResponse',
          workers: [
            create(WorkerSchema, {
              id: 'w-1',
              address: '10.0.0.1:4000',
              state: WorkerState.CONNECTED,
              draining: true,
              runningTasks: 2,
              capacity: { millicpu: 4000n, memoryBytes: 8n << 30n },
              allocated: { millicpu: 1500n, memoryBytes: 512n << 20n },
            }),
          ],
          nextPageToken: '',
        }),
      getWorker: (call, cb) => cb(toStatus(new NotFoundError('worker', call.request.id))),
      drainWorker: (call, cb) =>
        call.request.id === 'w-1'
          ? cb(null, create(DrainWorkerResponseSchema, { worker: { id: 'w-1', state: WorkerState.CONNECTED, draining: call.request.drain } }))
          : cb(toStatus(new NotFoundError('worker', call.request.id))),
      removeWorker: (call, cb) => cb(toStatus(new NotFoundError('worker', call.request.id))),
      watchEvents: (call) => call.end(),
      taskLogs: (call) => {
        const { id, tailLines, stderr } = call.request;
        if (!this.tasks.has(id)) {
          call.emit('error', toStatus(new NotFoundError('task', id)));
          return;
        }
        const lines = stderr ? ['oops\n'] : ['one\n', 'two\n', 'three\n'];
        for (const line of tailLines === undefined ? lines : lines.slice(-tailLines || lines.length)) {
          call.write(create(TaskLogsResponseSchema, { data: new TextEncoder().encode(line) }));
        }
        call.end();
      },
      status: (_call, cb) =>
        // create(): fields added to StatusResponse later get their defaults (a bare literal would fail to serialize).
        cb(null, create(StatusResponseSchema, { version: '9.9.9', store: 'lmdb', workersConnected: 1, workersTotal: 2, tasksByState: { done: 4 } })),
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
  // A fresh fake manager for every test: no test sees another's tasks or counters.
  let fake: FakeManager;
  let m: string[];
  beforeEach(async () => {
    fake = new FakeManager();
    await fake.start();
    m = ['--manager', fake.address];
  });
  afterEach(() => fake.stop());

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
        expect(r.out).to.match(/run\|schedule \[options\] \[command\.\.\.\]/);
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

    it('exits 2 naming the flag for a bad --cpu, --mem, --label, --priority, --retries, --count or --schedule-timeout', async () => {
      const cases: Array<[string, string]> = [
        ['--cpu', 'lots'],
        ['--cpu', '0'],
        ['--cpu', '0.0005'],
        ['--cpu', '-1'],
        ['--mem', '12Qi'],
        ['--mem', '0'],
        ['--label', 'gpu'],
        ['--priority', '1.5'],
        ['--priority', '3000000000'],
        ['--retries', '-1'],
        ['--count', '0'],
        ['--count', 'many'],
        ['--count', '10001'],
        ['--schedule-timeout', '30'],
        ['--schedule-timeout', '1200h'],
        ['--timeout', '1200h'],
      ];
      for (const [flag, value] of cases) {
        const r = await run([...m, 'tasks', 'run', flag, value, '--', 'true']);
        expect(r.code, `${flag} ${value}`).to.equal(2);
        expect(r.err, `${flag} ${value}`).to.include(flag);
        expect(r.out).to.equal('');
      }
      const both = await run([...m, 'tasks', 'run', '--spread', '--binpack', '--', 'true']);
      expect(both.code).to.equal(2);
      expect(both.err).to.match(/--spread.*--binpack|--binpack.*--spread/);
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
      expect(r.err).to.match(/^schedctl: cannot reach the management node at 127\.0\.0\.1:1: connection refused/);
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
      const id = (await run([...m, 'tasks', 'run', '--', 'sh', '-c', 'echo $A', '-o', 'x'])).out.trim();
      const r = await run([...m, 'tasks', 'show', id]);
      expect(r.code).to.equal(0);
      expect(r.out).to.match(new RegExp(`^ID:\\s+${id}$`, 'm'));
      expect(r.out).to.match(/^Command:\s+sh -c 'echo \$A' -o x$/m);
    });

    it('lists tasks across pages up to --limit and hints when some were left out', async () => {
      while (fake.tasks.size < 2 * PAGE + 5) (await run([...m, 'tasks', 'run', '--', 'true'])).code;
      const all = await run([...m, '-o', 'json', 'tasks', 'ls', '--limit', '0']);
      expect(JSON.parse(all.out).tasks).to.have.length(fake.tasks.size);
      const some = await run([...m, 'tasks', 'ls', '--limit', String(PAGE + 3)]);
      const lines = some.out.trimEnd().split('\n');
      expect(lines[0]).to.match(/^ID\s+STATE\s+WORKER\s+EXIT\s+AGE\s+DURATION\s+COMMAND$/);
      expect(lines).to.have.length(PAGE + 4);
      expect(some.err).to.equal(`showing ${PAGE + 3} of ${fake.tasks.size} (newest first); --all for all, --limit N for more\n`);
    });

    it('sends resources, constraints, priority, retries, strategy and schedule timeout', async () => {
      const r = await run([
        ...m, 'tasks', 'run', '--cpu', '0.5', '--mem', '256Mi', '--label', 'gpu=true', '-l', 'zone=a', '--priority', '-3',
        '--retries', '2', '--spread', '--schedule-timeout', '1m30s', '--', 'train', '--epochs', '3',
      ]);
      expect(r.code, r.err).to.equal(0);
      const req = fake.runs.at(-1)!;
      expect(req.count).to.equal(1);
      expect(req.spec).to.deep.include({ argv: ['train', '--epochs', '3'], priority: -3, retries: 2, strategy: 'spread', scheduleTimeoutMs: 90_000 });
      expect(req.spec?.resources).to.deep.include({ millicpu: 500n, memoryBytes: 256n * 2n ** 20n });
      expect(req.spec?.constraints).to.deep.equal({ gpu: 'true', zone: 'a' });

      await run([...m, 'tasks', 'run', '--cpu', '250m', '--mem', '512M', '--binpack', '--', 'true']);
      expect(fake.runs.at(-1)!.spec).to.deep.include({ strategy: 'binpack', priority: 0, retries: 0, scheduleTimeoutMs: 0 });
      expect(fake.runs.at(-1)!.spec?.resources).to.deep.include({ millicpu: 250n, memoryBytes: 512_000_000n });
      // No resource flag: no resources message at all.
      await run([...m, 'tasks', 'run', '--', 'true']);
      expect(fake.runs.at(-1)!.spec?.strategy).to.equal('');
      expect(fake.runs.at(-1)!.spec?.resources).to.equal(undefined);
    });

    it('--count prints every task id, one per line, and -o json the whole response', async () => {
      const r = await run([...m, 'tasks', 'run', '--count', '3', '--', 'true']);
      expect(r.code, r.err).to.equal(0);
      const ids = r.out.trimEnd().split('\n');
      expect(ids).to.have.length(3);
      for (const id of ids) expect(id).to.match(/^t-\d+$/);
      expect(fake.runs.at(-1)!.count).to.equal(3);

      const json = await run([...m, '-o', 'json', 'tasks', 'run', '--count', '2', '--', 'true']);
      const res = JSON.parse(json.out) as { groupId: string; task: { id: string }; tasks: Array<{ id: string; groupId: string }> };
      expect(res.groupId).to.match(/^g-\d+$/);
      expect(res.tasks).to.have.length(2);
      expect(res.tasks.map((t) => t.groupId)).to.deep.equal([res.groupId, res.groupId]);
      expect(res.task.id).to.equal(res.tasks[0]!.id);
    });

    it('--count --wait waits for every task on one stream and exits with the first failing exit code', async () => {
      const opens = fake.watchOpens;
      const r = await run([...m, 'tasks', 'run', '--count', '3', '--wait', '--', 'exits', '0', '4', '2']);
      expect(r.code).to.equal(4);
      const ids = r.out.trimEnd().split('\n');
      expect(ids).to.have.length(3);
      expect(fake.watchOpens).to.equal(opens + 1);
      expect(fake.watched.at(-1)).to.deep.equal(ids);
      expect(r.err).to.equal(`schedctl: task ${ids[0]} succeeded\nschedctl: task ${ids[1]} exited with 4\nschedctl: task ${ids[2]} exited with 2\n`);

      expect((await run([...m, 'tasks', 'run', '--count', '2', '--wait', '--', 'exits', '0', '0'])).code).to.equal(0);
    });

    it('--count --wait exits 125 when any task is dead, whatever the others exit with', async () => {
      const r = await run([...m, 'tasks', 'run', '--count', '3', '--wait', '--', 'exits', '200', 'dead', '0']);
      expect(r.code).to.equal(125);
      const ids = r.out.trimEnd().split('\n');
      expect(r.err).to.include(`schedctl: task ${ids[1]} is dead: ack-timeout\n`);
    });

    it('--count --wait -o json prints the response with the finished tasks', async () => {
      const r = await run([...m, '-o', 'json', 'tasks', 'run', '--count', '2', '--wait', '--', 'exits', '1', '3']);
      expect(r.code).to.equal(1);
      const res = JSON.parse(r.out) as { groupId: string; tasks: Array<{ state: string; exitCode: number }> };
      expect(res.groupId).to.match(/^g-\d+$/);
      expect(res.tasks.map((t) => [t.state, t.exitCode])).to.deep.equal([
        ['TASK_STATE_DONE', 1],
        ['TASK_STATE_DONE', 3],
      ]);
    });

    it('lists one group with --group, pending reasons in REASON; -o wide adds OUTCOME, PRI and GROUP', async () => {
      const outside = (await run([...m, 'tasks', 'run', '--', 'true'])).out.trim();
      const ids = (await run([...m, 'tasks', 'run', '--count', '2', '--priority', '7', '--label', 'gpu=true', '--', 'true'])).out.trimEnd().split('\n');
      const group = fake.tasks.get(ids[0]!)!.groupId;
      const ls = await run([...m, 'tasks', 'ls', '--group', group]);
      expect(ls.code, ls.err).to.equal(0);
      const lines = ls.out.trimEnd().split('\n');
      expect(lines[0]).to.match(/^ID\s+STATE\s+WORKER\s+EXIT\s+AGE\s+DURATION\s+COMMAND\s+REASON$/);
      expect(lines.slice(1).map((l) => l.split(/\s{2,}/))).to.deep.equal(
        // The line fits 80 columns: REASON is cut (-o wide has it whole).
        ids.map((id) => [id, 'pending', '-', '-', '0s', '-', 'true', '0/1 workers fit: 1 missing …']),
      );
      expect(fake.tasks.has(outside)).to.equal(true); // the filter is the server's
      expect(ls.out).to.not.include(outside);

      // -o wide: every column, GROUP last (unless --group).
      const all = await run([...m, '-o', 'wide', 'tasks', 'ls', '--limit', '0']);
      expect(all.out.split('\n')[0]).to.match(/^ID\s+STATE\s+OUTCOME\s+PRI\s+WORKER\s+EXIT\s+AGE\s+DURATION\s+COMMAND\s+REASON\s+GROUP$/);
      expect(all.out).to.match(new RegExp(`^${ids[0]}\\s+pending\\s+-\\s+7\\s.*\\s0/1 workers fit: 1 missing label gpu=true\\s+${group}$`, 'm'));
    });

    it('shows what a task asked for: resources, constraints, priority, retries, strategy, timeout, group, pending reason', async () => {
      const id = (
        await run([...m, 'tasks', 'run', '--count', '2', '--cpu', '1.5', '--mem', '1Gi', '-l', 'gpu=true', '--priority', '10',
          '--retries', '2', '--spread', '--schedule-timeout', '30s', '--', 'true'])
      ).out.split('\n')[0]!;
      const r = await run([...m, 'tasks', 'show', id]);
      expect(r.code, r.err).to.equal(0);
      expect(r.out).to.match(/^Pending reason:\s+0\/1 workers fit: 1 missing label gpu=true$/m);
      expect(r.out).to.match(/^Group:\s+g-\d+$/m);
      expect(r.out).to.match(/^CPU:\s+1\.5$/m);
      expect(r.out).to.match(/^Memory:\s+1\.0Gi$/m);
      expect(r.out).to.match(/^Constraints:\s+gpu=true$/m);
      expect(r.out).to.match(/^Priority:\s+10$/m);
      expect(r.out).to.match(/^Retries:\s+2$/m);
      expect(r.out).to.match(/^Strategy:\s+spread$/m);
      expect(r.out).to.match(/^Schedule timeout:\s+30\.0s$/m);

      const plainId = (await run([...m, 'tasks', 'run', '--', 'true'])).out.trim();
      const plain = await run([...m, 'tasks', 'show', plainId]);
      expect(plain.out).to.match(/^Strategy:\s+default$/m);
      expect(plain.out).to.match(/^Schedule timeout:\s+none$/m);
      expect(plain.out).to.match(/^CPU:\s+-$/m);
      expect(plain.out).to.match(/^Group:\s+-$/m);
    });

    it('lists workers as a table', async () => {
      const r = await run([...m, 'workers', 'ls']);
      const lines = r.out.trimEnd().split('\n');
      expect(lines[0]).to.match(/^ID\s+NAME\s+STATE\s+CPU\s+MEM\s+TASKS\s+LAST SEEN$/);
      expect(lines[1]!.split(/\s+/)).to.deep.equal(['w-1', 'w-1', 'connected,draining', '1.5/4', '512Mi/8.0Gi', '2', '-']);
    });

    it('drains and undrains a worker, and names an unknown one', async () => {
      const drained = await run([...m, 'workers', 'drain', 'w-1']);
      expect(drained.code, drained.err).to.equal(0);
      expect(drained.out).to.match(/^w-1\s+w-1\s+connected,draining\s/m);
      expect((await run([...m, 'workers', 'undrain', 'w-1'])).out).to.match(/^w-1\s+w-1\s+connected\s/m);
      const missing = await run([...m, 'workers', 'drain', 'nope', 'w-1']);
      expect(missing.code).to.equal(1);
      expect(missing.err).to.equal('schedctl: cannot drain nope: worker "nope" not found\n');
      expect(missing.out).to.match(/^w-1\s/m);
    });

    it('prints a task\'s logs, the last lines with --tail, stderr with --stderr', async () => {
      const id = (await run([...m, 'tasks', 'run', '--', 'true'])).out.trim();
      expect((await run([...m, 'tasks', 'logs', id])).out).to.equal('one\ntwo\nthree\n');
      expect((await run([...m, 'tasks', 'logs', '--tail', '2', id])).out).to.equal('two\nthree\n');
      expect((await run([...m, 'tasks', 'logs', '--stderr', id])).out).to.equal('oops\n');
      const bad = await run([...m, 'tasks', 'logs', '--tail', 'x', id]);
      expect(bad.code).to.equal(2);
      expect(bad.err).to.match(/--tail.*whole number/);
      const missing = await run([...m, 'tasks', 'logs', 'nope']);
      expect([missing.code, missing.err]).to.deep.equal([1, 'schedctl: task "nope" not found\n']);
    });

    it('--shell wraps the words in /bin/sh -c and --timeout sets the time limit', async () => {
      const r = await run([...m, 'tasks', 'run', '--shell', '--timeout', '2m', '--', 'echo', '$HOME', '|', 'wc', '-c']);
      expect(r.code, r.err).to.equal(0);
      expect(fake.runs.at(-1)!.spec).to.deep.include({ argv: ['/bin/sh', '-c', 'echo $HOME | wc -c'], timeoutMs: 120_000 });
      expect((await run([...m, 'tasks', 'run', '--timeout', 'soon', '--', 'true'])).err).to.match(/--timeout/);
    });

    it('prints status in all three formats', async () => {
      const table = await run([...m, 'status']);
      expect(table.out).to.match(/^Store:\s+lmdb$/m);
      expect(table.out).to.match(/^Tasks done:\s+4$/m);
      expect(JSON.parse((await run([...m, '-o', 'json', 'status'])).out)).to.include({ version: '9.9.9', workersTotal: 2 });
      expect((await run([...m, 'status', '-o', 'yaml'])).out).to.include('store: lmdb');
    });

    it('exits by itself as a process once a --wait has its answer (client closed)', async function () {
      this.timeout(60_000);
      const main = fileURLToPath(new URL('../../schedctl/src/main.ts', import.meta.url));
      const child = spawn(process.execPath, ['--import', 'tsx', main, ...m, 'tasks', 'run', '--wait', '--', 'exit', '5'], { stdio: 'ignore' });
      const exited = new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
      // From the moment the answer is sent, the process has nothing left to do: an open client
      // (channel, watch stream) would keep it alive for ever. The bound only a hang can miss.
      const answered = new Promise<void>((resolve) => fake.once('final', () => resolve()));
      const code = await Promise.race([exited, answered.then(() => undefined)]).then(async (first) => {
        if (first !== undefined) return first; // exited even before the answer: the code says why
        let timer: NodeJS.Timeout | undefined;
        const hung = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), 15_000)));
        const result = await Promise.race([exited, hung]);
        clearTimeout(timer);
        if (result === 'hung') {
          child.kill('SIGKILL');
          expect.fail('schedctl still running 15 s after its --wait got the final state: something was left open');
        }
        return result;
      });
      expect(code).to.equal(5);
    });
  });
});
