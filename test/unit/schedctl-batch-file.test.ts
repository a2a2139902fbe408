// tasks run -f FILE: the task file's checks (batch-file.ts) and the run that
// submits it (tasks-run-file.ts), against a fake manager.
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TaskState } from '../../proto/gen/schedapi/v1/types_pb.js';
import { entryKey, parseBatch } from '../../schedctl/src/batch-file.js';
import { FakeManagement, runSchedctl } from '../support/fake-management.js';
import { until } from '../support/until.js';

const ROOT = new URL('../../', import.meta.url).pathname;

describe('schedctl task files (batch-file.ts)', () => {
  it('reads every tasks run flag as a field, in YAML or JSON', () => {
    const [e] = parseBatch(
      `- argv: [./train, --epochs, 3]
  env: {LANG: C, PORT: 8080}
  cwd: /srv
  cpu: 0.5
  mem: 256Mi
  labels: {gpu: true}
  priority: -2
  retries: 1
  strategy: spread
  schedule_timeout: 30s
  timeout: 1h
  count: 4
`,
      'f.yaml',
    );
    expect(e).to.deep.equal({
      argv: ['./train', '--epochs', '3'],
      env: { LANG: 'C', PORT: '8080' },
      cwd: '/srv',
      cpu: 500,
      mem: 256 << 20,
      label: { gpu: 'true' },
      priority: -2,
      retries: 1,
      spread: true,
      scheduleTimeout: 30_000,
      timeout: 3_600_000,
      count: 4,
    });
    expect(parseBatch('[{"cmd": "make", "params": ["test"], "shell": false}]', 'f.json')).to.deep.equal([{ argv: ['make', 'test'], shell: false }]);
  });

  it("reads go-schedule's own file as is", () => {
    expect(parseBatch('tasks:\n  - cmd: sleep\n    params: ["30"]\n  - cmd: echo\n', 'gs.yaml')).to.deep.equal([{ argv: ['sleep', '30'] }, { argv: ['echo'] }]);
  });

  it('names the file, the entry (from 1) and the field of every problem', () => {
    const bad = `- argv: [true]
- argv: [true]
- cmd: x
  mem: lots
- argv: [a]
  cmd: b
- argv: [true]
  memory: 1Gi
- cmd: make test
`;
    let lines: string[] = [];
    try {
      parseBatch(bad, 'tasks.yaml');
    } catch (err) {
      lines = (err as Error).message.split('\n');
    }
    expect(lines).to.have.length(4);
    expect(lines[0]).to.match(/^tasks\.yaml: entry 3: mem: invalid memory size "lots"/);
    expect(lines.slice(1)).to.deep.equal([
      'tasks.yaml: entry 4: argv: give argv (a list) or cmd (a program, with params), not both',
      'tasks.yaml: entry 5: unknown field memory',
      'tasks.yaml: entry 6: cmd: is one program name; give its arguments in params, or set shell: true for a command line',
    ]);
    expect(() => parseBatch('- {argv: [x], count: 0}', 't.yaml')).to.throw(/^t\.yaml: entry 1: count: /);
    expect(() => parseBatch('- {argv: [x], strategy: random}', 't.yaml')).to.throw(/^t\.yaml: entry 1: strategy: /);
    expect(() => parseBatch('- {argv: [x], timeout: soon}', 't.yaml')).to.throw(/^t\.yaml: entry 1: timeout: /);
    expect(() => parseBatch('hello: world', 't.yaml')).to.throw(/^t\.yaml: expected a list of tasks/);
    expect(() => parseBatch('[]', 't.yaml')).to.throw('t.yaml: no tasks in the file');
    expect(() => parseBatch('- [unclosed', 't.yaml')).to.throw(/^t\.yaml: /);
  });

  it('derives one idempotency key per entry from the run key, within the 128 characters RunTask allows', () => {
    expect(entryKey('nightly', 0)).to.equal('nightly:0');
    const long = 'k'.repeat(128);
    const a = entryKey(long, 12);
    expect(a).to.have.length(128);
    expect(a).to.match(/^k+\.[0-9a-f]{16}:12$/);
    expect(entryKey(long, 12)).to.equal(a);
    expect(entryKey(`${'k'.repeat(127)}j`, 12)).to.not.equal(a);
  });

  it('the example files in the repository are valid', () => {
    expect(parseBatch(readFileSync(join(ROOT, 'examples/tasks.yaml'), 'utf8'), 'tasks.yaml').length).to.be.greaterThan(1);
    expect(parseBatch(readFileSync(join(ROOT, 'examples/go-schedule-tasks.yaml'), 'utf8'), 'gs.yaml').length).to.be.greaterThan(1);
  });
});

describe('schedctl tasks run -f', () => {
  let fake: FakeManagement;
  let dir: string;
  beforeEach(async () => {
    fake = new FakeManagement();
    await fake.start();
    dir = mkdtempSync(join(tmpdir(), 'schedctl-batch-'));
  });
  afterEach(() => {
    fake.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const file = (text: string): string => {
    const path = join(dir, 'tasks.yaml');
    writeFileSync(path, text);
    return path;
  };
  const run = (...args: string[]) => runSchedctl(fake.address, args);

  it('submits every entry with its own key, prints every id in entry order, and a rerun with the key sends the same keys', async () => {
    const path = file('- {argv: [a]}\n- {cmd: b, count: 2}\n- {cmd: "echo hi", shell: true}\n');
    const r = await run('tasks', 'run', '-f', path, '--idempotency-key', 'job-7', '--cpu', '1', '-e', 'A=1');
    expect(r.code, r.err).to.equal(0);
    const byKey = new Map(fake.runs.map((q) => [q.idempotencyKey, q]));
    expect([...byKey.keys()].sort()).to.deep.equal(['job-7:0', 'job-7:1', 'job-7:2']);
    expect(byKey.get('job-7:0')!.spec?.argv).to.deep.equal(['a']);
    expect(byKey.get('job-7:1')!.count).to.equal(2);
    expect(byKey.get('job-7:2')!.spec?.argv).to.deep.equal(['/bin/sh', '-c', 'echo hi']);
    // The command line's flags are every entry's defaults.
    expect(fake.runs.every((q) => q.spec?.resources?.millicpu === 1000n && q.spec.env.A === '1')).to.equal(true);
    const ids = r.out.trimEnd().split('\n');
    expect(ids).to.have.length(4);
    const created = [...fake.tasks.values()];
    expect(ids[0]).to.equal(created.find((t) => t.spec?.argv[0] === 'a')!.id);

    await run('tasks', 'schedule', '-f', path, '--idempotency-key', 'job-7');
    expect(fake.runs.slice(3).map((q) => q.idempotencyKey).sort()).to.deep.equal(['job-7:0', 'job-7:1', 'job-7:2']);
  });

  it('exits 2 naming the entry and field, submitting nothing, when the file is wrong', async () => {
    const r = await run('tasks', 'run', '-f', file('- {argv: [a]}\n- {argv: [b], mem: lots}\n'));
    expect(r.code).to.equal(2);
    expect(r.err).to.match(/tasks\.yaml: entry 2: mem: invalid memory size "lots"/);
    expect(fake.runs).to.have.length(0);
    const both = await run('tasks', 'run', '-f', file('- {argv: [a]}\n'), '--', 'true');
    expect(both.code).to.equal(2);
    expect((await run('tasks', 'run', '-f', join(dir, 'missing.yaml'))).err).to.match(/missing\.yaml: no such file/);
  });

  it('-o json prints the responses as one list', async () => {
    const r = await run('-o', 'json', 'tasks', 'run', '-f', file('tasks:\n  - {cmd: sleep, params: ["1"]}\n  - {cmd: true}\n'));
    const list = JSON.parse(r.out) as Array<{ task: { spec: { argv: string[] } } }>;
    expect(list.map((x) => x.task.spec.argv)).to.deep.equal([['sleep', '1'], ['true']]);
  });

  it('--wait waits for every task of every entry and exits as tasks wait does', async () => {
    const waiting = run('tasks', 'run', '--wait', '-f', file('- {argv: [a]}\n- {argv: [b], count: 2}\n'));
    await until('the watch is open', () => fake.watching === 1);
    const ids = fake.watches[0]!.ids;
    expect(ids).to.have.length(3);
    for (const id of ids) fake.set({ id, state: TaskState.DONE, exitCode: id === ids[1] ? 6 : 0 });
    const r = await waiting;
    expect(r.code).to.equal(6);
  });
});
