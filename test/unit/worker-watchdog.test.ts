// The task watchdog (watchdog.ts) with real processes: a small worker stand-in
// (Executor + Watchdog, run by node -e under tsx) is killed with SIGKILL, and
// its tasks must die with it; a clean exit leaves nothing to kill and does not
// wait for the watchdog.
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { ROOT } from '../support/processes.js';
import { RUN_ENV, TASK_ATTEMPT_ENV, TASK_ID_ENV, WORKER_ENV } from '../../worker-node/src/task-env.js';
import { Watchdog } from '../../worker-node/src/watchdog.js';
import { until } from '../support/until.js';
import { alive } from '../support/proc.js';

const MAIN = join(ROOT, 'worker-node/src/main.ts');
const TSX = ['--import', 'tsx'];

// The worker stand-in: argv is data dir, worker id, mode ("task": run one task and stay; "idle": nothing to do).
const STAND_IN = `
import { pino } from 'pino';
import { Executor } from ${JSON.stringify(join(ROOT, 'worker-node/src/executor.ts'))};
import { Watchdog } from ${JSON.stringify(join(ROOT, 'worker-node/src/watchdog.ts'))};
const [dataDir, workerId, mode] = process.argv.slice(1);
const logger = pino({ level: 'info' }, pino.destination(2));
const executor = new Executor({ dataDir, workerId });
const wd = new Watchdog({ workerId, runId: executor.runId, logger, logLevel: 'debug', command: [process.execPath, '--import', 'tsx', ${JSON.stringify(MAIN)}] });
const report = (extra) => process.stdout.write(JSON.stringify({ watchdog: wd.pid, runId: executor.runId, ...extra }) + '\\n');
if (mode === 'task') {
  executor.once('started', (e) => report({ task: e.pid }));
  executor.start('t1', 1, { argv: ['sh', '-c', 'sleep 30 & echo $!; wait'] });
} else report({});
`;

// A zombie runs nothing: it counts as gone.

interface StandIn {
  child: ChildProcess;
  report: Promise<{ watchdog: number; runId: string; task?: number }>;
  stderr: () => string;
  exited: Promise<number | null>;
}

describe('worker task watchdog', function () {
  this.timeout(30_000);
  let dir: string;
  const workerId = randomUUID();
  const pids: number[] = [];
  const watchdogs: Watchdog[] = [];

  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'worker-watchdog-'))));
  afterEach(() => {
    for (const w of watchdogs.splice(0)) w.close();
    for (const pid of pids.splice(0)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  function standIn(mode: 'task' | 'idle'): StandIn {
    const child = spawn(process.execPath, [...TSX, '--input-type=module', '-e', STAND_IN, dir, workerId, mode], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    pids.push(child.pid!);
    let out = '';
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const report = new Promise<{ watchdog: number; runId: string; task?: number }>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]!) as { watchdog: number; runId: string });
      });
      child.once('exit', () => reject(new Error(`stand-in exited early: ${err}`)));
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    return { child, report, stderr: () => err, exited };
  }

  it('kills the task groups of its worker, and only of that run, when the worker is killed with SIGKILL', async () => {
    const w = standIn('task');
    const { watchdog, task } = await w.report;
    pids.push(watchdog, task!);
    const logFile = join(dir, 'logs', 't1.1.stdout');
    let child = 0;
    await until('the task child', () => (child = Number(readFileSync(logFile, 'utf8').trim() || 0)) > 0);
    pids.push(child);
    // The same worker id, another run (a restarted worker's task): not this watchdog's.
    const bystander = spawn('sleep', ['30'], {
      detached: true,
      stdio: 'ignore',
      env: { [WORKER_ENV]: workerId, [RUN_ENV]: 'another-run', [TASK_ID_ENV]: 'other', [TASK_ATTEMPT_ENV]: '1' },
    });
    pids.push(bystander.pid!);
    await until('the watchdog to watch', () => w.stderr().includes('watching the worker-node'));
    expect([task!, child].every(alive)).to.equal(true);

    w.child.kill('SIGKILL');
    // Event-driven (the worker's pipe closes): the bounds only catch a watchdog that never acts.
    await until('the task and its child to die', () => !alive(task!) && !alive(child), 15_000);
    await until('the watchdog to exit', () => !alive(watchdog), 15_000);
    expect(w.stderr()).to.match(/worker-node is gone: killed the task processes it left/);
    expect(w.stderr()).to.include('"tasks":["t1.1"]');
    expect(alive(bystander.pid!)).to.equal(true);
  });

  it('does not keep its worker alive, and exits after finding nothing when the worker exits', async () => {
    const w = standIn('idle');
    const { watchdog } = await w.report;
    pids.push(watchdog);
    expect(await w.exited).to.equal(0); // the stand-in has nothing else to do: the watchdog's pipe does not hold it
    await until('the watchdog to exit', () => !alive(watchdog));
    expect(w.stderr()).to.not.match(/killed the task processes/);
  });

  it('exits when closed, and is started again if it dies', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
    const wd = new Watchdog({ workerId, runId: randomUUID(), logger, logLevel: 'info', command: [process.execPath, ...TSX, MAIN], restartDelayMs: 50 });
    watchdogs.push(wd);
    const first = wd.pid!;
    pids.push(first);
    process.kill(first, 'SIGKILL');
    await until('another watchdog', () => wd.pid !== undefined && wd.pid !== first);
    const second = wd.pid!;
    pids.push(second);
    expect(lines.join('')).to.match(/task watchdog is gone; starting another/);
    wd.close();
    await until('the watchdog to exit', () => wd.pid === undefined && !alive(second));
  });
});
