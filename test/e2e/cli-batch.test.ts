// schedctl tasks run -f FILE with the built binaries: every entry runs, --wait
// exits as tasks wait does, a rerun with the same key creates nothing, go-schedule's
// file is read as is, and a wrong file submits nothing.
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, ROOT, run, startDaemon, startManager, waitFor, writeYaml, type Daemon, type ManagerHandle } from '../support/processes.js';

describe('e2e: schedctl tasks run -f', function () {
  this.timeout(120_000);
  let dir: string;
  let manager: ManagerHandle;
  const daemons: Daemon[] = [];
  const ctl = (...args: string[]) => run(BIN.schedctl, ['--manager', manager.address, ...args], { timeoutMs: 90_000 });
  const file = (name: string, text: string): string => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  const allTasks = async (): Promise<Array<{ id: string; spec: { argv: string[] } }>> =>
    (JSON.parse((await ctl('-o', 'json', 'tasks', 'ls', '--limit', '0')).stdout) as { tasks?: Array<{ id: string; spec: { argv: string[] } }> }).tasks ?? [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sched-cli-batch-'));
    manager = await startManager({
      config: `store: {type: embedded, path: ${join(dir, 'store')}}\nping_interval: 300ms\n`,
      yamlFile: join(dir, 'manager.yaml'),
      logFile: join(dir, 'manager.log'),
    });
    daemons.push(manager.daemon);
    const wy = writeYaml(join(dir, 'worker.yaml'), `manager: ${manager.address}\ndata_dir: ${join(dir, 'worker')}\n`);
    daemons.push(startDaemon(BIN.worker, ['-f', wy], join(dir, 'worker.log')));
    await waitFor('worker connected', async () => /\bconnected\b/.test((await ctl('workers', 'ls')).stdout), 60_000);
  });

  after(async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it("runs every entry, --wait exits with the first failing entry's code, and a rerun with the key creates nothing", async () => {
    const path = file(
      'tasks.yaml',
      `- argv: [/bin/sh, -c, "exit 0"]
- cmd: "exit 6"
  shell: true
- cmd: /bin/sh
  params: [-c, "exit 2"]
  count: 2
`,
    );
    const r = await ctl('tasks', 'run', '--wait', '-f', path, '--idempotency-key', 'batch-e2e-1');
    expect(r.code, r.stderr).to.equal(6);
    const ids = r.stdout.trim().split('\n');
    expect(ids).to.have.length(4);
    const before = await allTasks();
    expect(before.map((t) => t.id)).to.include.members(ids);

    const again = await ctl('tasks', 'schedule', '-f', path, '--idempotency-key', 'batch-e2e-1');
    expect(again.code, again.stderr).to.equal(0);
    expect(again.stdout.trim().split('\n')).to.deep.equal(ids);
    expect((await allTasks()).length).to.equal(before.length);
  });

  it("reads go-schedule's own file (examples/go-schedule-tasks.yaml) with tasks schedule -f", async () => {
    const r = await ctl('tasks', 'schedule', '-f', join(ROOT, 'examples/go-schedule-tasks.yaml'));
    expect(r.code, r.stderr).to.equal(0);
    const ids = r.stdout.trim().split('\n');
    expect(ids).to.have.length(3);
    const echo = (JSON.parse((await ctl('-o', 'json', 'tasks', 'show', ids[1]!)).stdout) as { spec: { argv: string[] } }).spec.argv;
    expect(echo).to.deep.equal(['echo', 'hello', 'world']);
    expect((await ctl('tasks', 'wait', ids[1]!)).code).to.equal(0);
    expect((await ctl('tasks', 'logs', ids[1]!)).stdout).to.equal('hello world\n');
    await ctl('tasks', 'cancel', ...ids);
  });

  it('refuses a wrong file naming the entry and field, exit 2, and submits nothing', async () => {
    const before = (await allTasks()).length;
    const r = await ctl('tasks', 'run', '-f', file('bad.yaml', '- argv: [true]\n- argv: [true]\n  cpu: lots\n'));
    expect(r.code).to.equal(2);
    expect(r.stderr).to.match(/^schedctl: .*bad\.yaml: entry 2: cpu: invalid CPU "lots"/);
    expect((await allTasks()).length).to.equal(before);
  });
});
