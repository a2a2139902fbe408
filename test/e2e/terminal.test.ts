// schedctl in a real terminal (tmux, 80 × 24): what an operator sees. Each
// screen is read with capture-pane and compared with the one expected; tasks
// wait for a gate file, so every step waits for an event, not for time.
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { BIN, run, startLocalManager, startWorker, waitFor, type Daemon } from '../support/processes.js';
import { hasTmux, openTerminal, type Terminal } from '../support/tmux.js';

const WIDTH = 80;

describe('e2e: schedctl in a terminal (tmux)', function () {
  this.timeout(90_000);
  let dir: string;
  let address: string;
  let term: Terminal;
  const daemons: Daemon[] = [];
  const ctl = (...args: string[]) => run(BIN.schedctl, ['--manager', address, ...args]);
  /** A task that waits for its gate file, printing a line before and after. */
  const gated = (gate: string) => ['sh', '-c', `echo before; while [ ! -e ${gate} ]; do sleep 0.05; done; echo after`];
  const submit = async (...args: string[]): Promise<string> => {
    const r = await ctl('tasks', 'run', ...args);
    expect(r.code, r.stderr).to.equal(0);
    return r.stdout.trim();
  };
  const state = async (id: string) => (JSON.parse((await ctl('-o', 'json', 'tasks', 'show', id)).stdout) as { state: string }).state;
  /** Ages and run times tick: made N for comparing screens. */
  const untimed = (line: string) => line.replace(/\b\d+(ms|s|m)\b/g, 'N');
  /** The screen from the prompt line of `command` to the next bare prompt, or undefined until it is there. */
  const ran = (screen: string, command: string): string[] | undefined => {
    const lines = screen.split('\n');
    const from = lines.lastIndexOf(`$ ${command}`);
    const to = from < 0 ? -1 : lines.indexOf('$', from + 1);
    return to < 0 ? undefined : lines.slice(from, to + 1);
  };

  before(async function () {
    if (!hasTmux()) {
      console.log('      (skipped: tmux is not installed; apt-get install tmux)');
      this.skip();
    }
    dir = mkdtempSync(join(tmpdir(), 'sched-term-'));
    const manager = await startLocalManager(dir);
    daemons.push(manager.daemon);
    address = manager.address;
    daemons.push(await startWorker(address, dir, 'name: term-worker\ncapacity: {cpu: 8, memory: 8Gi}\n'));
    term = openTerminal({
      width: WIDTH,
      height: 24,
      cwd: dir,
      env: { PATH: `${dirname(BIN.schedctl)}:${process.env.PATH ?? ''}`, SCHED_MANAGER: address },
    });
  });

  after(async () => {
    term?.close();
    await Promise.all(daemons.map((d) => d.stop()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Undone after each test whatever happened: gates opened, so no task of a failed test blocks the next. */
  const cleanups: Array<() => void> = [];
  beforeEach(() => term?.run('clear'));
  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.log(`      the screen:\n${term.screen().join('\n')}`);
    for (const undo of cleanups.splice(0)) undo();
    // Whatever still runs in the terminal (a failed test's schedctl) is stopped before the next.
    term?.keys('C-c');
  });

  it('tasks ls fits 80 columns: one line per task, short ids, long commands and reasons cut with …', async () => {
    const long = `echo ${'a-rather-long-argument '.repeat(4)}`;
    const done = [await submit('--wait', '--', 'true'), await submit('--wait', '--shell', '--', long)];
    const pending = await submit('--label', 'disk=nvme-with-a-long-label-value', '--', 'sleep', '1');
    try {
      // What tasks ls prints when piped (80 columns, as no terminal says otherwise): the screen must show exactly it.
      const piped = await ctl('tasks', 'ls', '--limit', '3');
      expect(piped.code, piped.stderr).to.equal(0);
      const command = 'schedctl tasks ls --limit 3';
      term.run(command);
      const screen = await term.waitFor('the listing and the prompt back', (s) => ran(s, command) !== undefined);
      const rows = piped.stdout.trimEnd().split('\n');
      expect(ran(screen, command)!.map(untimed)).to.deep.equal([`$ ${command}`, ...rows, '$'].map(untimed));
      expect(rows).to.have.length(4); // a header and three rows: nothing wrapped
      for (const row of rows) expect(row.length, row).to.be.at.most(WIDTH);
      expect(rows[0]).to.match(/^ID\s+STATE\s+WORKER\s+EXIT\s+AGE\s+DURATION\s+COMMAND\s+REASON$/);
      // Newest first, each by its short id (the last 8 characters).
      expect(rows.slice(1).map((r) => r.split(/\s+/)[0])).to.deep.equal([pending, done[1], done[0]].map((id) => id!.slice(-8)));
      expect(rows[1]).to.match(/ pending /).and.to.match(/…$/);
      expect(rows[2]).to.include('sh -c').and.to.match(/…/);
    } finally {
      await ctl('tasks', 'cancel', pending);
    }
  });

  it('tasks run --wait: Ctrl-C says what it waited for and how to wait again, exits 130, cancels nothing', async () => {
    const gate = join(dir, 'gate-ctrl-c');
    cleanups.push(() => writeFileSync(gate, ''));
    term.run(`schedctl tasks run --wait -- ${gated(gate).map((a) => `'${a}'`).join(' ')}`);
    // The id comes first on stdout; then the task runs (its first line is in its log).
    const screen = await term.waitFor('the task id', /^[0-9a-f]{8}-[0-9a-f-]{27}$/m);
    const id = /^([0-9a-f]{8}-[0-9a-f-]{27})$/m.exec(screen)![1]!;
    await waitFor('the task running', async () => (await state(id)) === 'TASK_STATE_SCHEDULED');
    term.keys('C-c');
    expect(await term.exitStatus()).to.equal(130);
    const lines = term.screen().join('\n');
    expect(lines).to.include('schedctl: interrupted; nothing was cancelled. Still waiting for 1 task:');
    expect(lines).to.include(`  ${id} running`);
    expect(lines).to.include(`schedctl: wait again with: schedctl tasks wait ${id}`);
    // Nothing was cancelled: the task still runs, and waiting again gets its end.
    expect(await state(id)).to.equal('TASK_STATE_SCHEDULED');
    term.run('clear');
    term.run(`schedctl tasks wait ${id}`);
    await term.waitFor('tasks wait started', new RegExp(`^\\$ schedctl tasks wait ${id}$`, 'm'));
    writeFileSync(gate, '');
    expect(await term.exitStatus()).to.equal(0);
    expect(await state(id)).to.equal('TASK_STATE_DONE');
  });

  it('tasks run --count 3 --wait draws a progress bar on stderr, then clears it', async () => {
    const gate = join(dir, 'gate-bar');
    cleanups.push(() => writeFileSync(gate, ''));
    term.run(`schedctl tasks run --count 3 --wait -- ${gated(gate).map((a) => `'${a}'`).join(' ')}`);
    const bar = await term.waitFor('the bar with 3 running', /^waiting \[[^\]]{24}\] 0\/3 0 done, 0 failed, 3 running, 0 pending$/m);
    const ids = bar.match(/^[0-9a-f]{8}-[0-9a-f-]{27}$/gm) ?? [];
    expect(ids, 'the ids on stdout, above the bar').to.have.length(3);
    writeFileSync(gate, '');
    // The prompt back (nothing typed meanwhile: typed keys would echo onto the bar's line).
    const end = await term.waitFor('the prompt', /^\$$/m);
    expect(end, 'the bar is cleared').not.to.match(/waiting \[/);
    expect(await term.exitStatus()).to.equal(0);
    expect(end.match(/^[0-9a-f]{8}-[0-9a-f-]{27}$/gm)).to.deep.equal(ids);
    for (const id of ids) expect(await state(id)).to.equal('TASK_STATE_DONE');
  });

  it('tasks logs -f prints output as it comes and returns when the task ends', async () => {
    const gate = join(dir, 'gate-logs');
    cleanups.push(() => writeFileSync(gate, ''));
    const id = await submit('--', ...gated(gate));
    await waitFor('the task running', async () => (await state(id)) === 'TASK_STATE_SCHEDULED');
    term.run(`schedctl tasks logs -f ${id}`);
    await term.waitFor('its first line', new RegExp(`logs -f ${id}\\n(.*\\n)*before$`, 'm'));
    expect(term.screen().join('\n')).not.to.match(/^after$/m);
    writeFileSync(gate, '');
    await term.waitFor('its last line', /^before\nafter$/m);
    expect(await term.exitStatus()).to.equal(0);
  });
});
