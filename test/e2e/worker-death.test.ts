// What happens to tasks when their worker-node dies, with the built binaries:
// kill -9 of a worker takes its task processes down at once (its watchdog),
// and the retry on the other worker starts only after they are gone; a
// restarted worker kills what a dead one left and reports it lost; a program
// that cannot be started makes the task dead, start-failed.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, run, startDaemon, startManager, waitFor, writeYaml, type Daemon } from '../support/processes.js';

interface TaskJson {
  id: string;
  state: string;
  attempt?: number;
  workerId?: string;
  deadReason?: string;
  error?: string;
  exitCode?: number;
}

/** State and process group of a live (not zombie) process, or undefined. */
function procStat(pid: number): { state: string; pgrp: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] === 'Z' ? undefined : { state: fields[0]!, pgrp: Number(fields[2]) };
  } catch {
    return undefined;
  }
}
const alive = (pid: number): boolean => procStat(pid) !== undefined;
/** Live members of a process group. */
function groupMembers(pgrp: number): number[] {
  return readdirSync('/proc')
    .map(Number)
    .filter((pid) => Number.isInteger(pid) && procStat(pid)?.pgrp === pgrp);
}

// Each attempt records its pids ("pid <attempt> <pid>") and its start ("start <attempt> <ms>"); a
// later attempt first records "overlap <pid>" for any process of an earlier attempt still alive.
const attemptScript = (file: string) => `
for p in $(awk -v a="$SCHED_TASK_ATTEMPT" '$1 == "pid" && $2 != a { print $3 }' ${file} 2>/dev/null); do
  if [ -e /proc/$p ] && ! grep -q '^State:[[:space:]]*Z' /proc/$p/status 2>/dev/null; then echo "overlap $p" >> ${file}; fi
done
echo "pid $SCHED_TASK_ATTEMPT $$" >> ${file}
echo "start $SCHED_TASK_ATTEMPT $(date +%s%3N)" >> ${file}
sleep 30 & echo "pid $SCHED_TASK_ATTEMPT $!" >> ${file}
wait`;

describe('e2e: worker death', function () {
  this.timeout(120_000);
  let dir: string;
  let port: number;
  let manager: Daemon | undefined;
  const workers = new Map<string, Daemon>();
  const ids = new Map<string, string>(); // name → worker id
  const stray: number[] = []; // processes the tests started or recorded, stopped in after()
  let victim: string | undefined; // the worker the first test killed
  const ctl = (...args: string[]) => run(BIN.schedctl, ['--manager', `127.0.0.1:${port}`, ...args]);
  const show = async (id: string): Promise<TaskJson> => JSON.parse((await ctl('tasks', 'show', '-o', 'json', id)).stdout) as TaskJson;
  const workerRow = async (name: string) => (await ctl('-o', 'wide', 'workers', 'ls')).stdout.split('\n').find((l) => l.startsWith(ids.get(name)!)) ?? '';
  const lines = (file: string): string[] => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);
  /** Pids of the task watchdogs a worker's log names. */
  const watchdogPids = (name: string): number[] =>
    lines(join(dir, `${name}.log`))
      .filter((l) => l.includes('task watchdog started'))
      .map((l) => (JSON.parse(l) as { pid: number }).pid);
  const startWorker = async (name: string) => {
    const yaml = writeYaml(
      join(dir, `${name}.yaml`),
      `manager: 127.0.0.1:${port}\ndata_dir: ${join(dir, name)}\nreconnect_interval: 200ms\nreconnect_max: 1s\n` +
        `capacity: {cpu: 2, memory: 2Gi}\nlabels: {name: ${name}}\n`,
    );
    workers.set(name, startDaemon(BIN.worker, ['-f', yaml], join(dir, `${name}.log`)));
    const id = await waitFor(`${name} id`, () => existsSync(join(dir, name, 'worker-id')) && readFileSync(join(dir, name, 'worker-id'), 'utf8').trim());
    ids.set(name, id);
    await waitFor(`${name} connected`, async () => /\sconnected\s/.test(await workerRow(name)));
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sched-worker-death-'));
    const started = await startManager({
      config: `store: {type: embedded, path: ${join(dir, 'store')}}\nping_interval: 300ms\nreconnect_grace: 2s\n`,
      yamlFile: join(dir, 'manager.yaml'),
      logFile: join(dir, 'manager.log'),
    });
    manager = started.daemon;
    port = started.port;
    await startWorker('a');
    await startWorker('b');
  });

  after(async () => {
    await Promise.all([...workers.values(), ...(manager ? [manager] : [])].map((d) => d.stop()));
    const watchdogs = [...workers.keys()].flatMap(watchdogPids);
    const recorded = lines(join(dir, 'attempts.log')).flatMap((l) => (l.startsWith('pid ') ? [Number(l.split(' ')[2])] : []));
    for (const pid of [...stray, ...recorded, ...watchdogs]) {
      // Only what is still ours: a recycled pid may belong to anything by now.
      let cmdline = '';
      try {
        cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
      } catch {
        continue;
      }
      if (!/sleep|__task-watchdog|sh\0/.test(cmdline)) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('kill -9 of a worker: its watchdog kills its task processes, and the retry starts on the other worker only after', async () => {
    const file = join(dir, 'attempts.log');
    const r = await ctl('tasks', 'run', '--retries', '1', '--', 'sh', '-c', attemptScript(file));
    expect(r.code, r.stderr).to.equal(0);
    const id = r.stdout.trim();
    const first = await waitFor('attempt 1 running', async () => {
      const t = await show(id);
      return t.state === 'TASK_STATE_SCHEDULED' && t.workerId ? t : undefined;
    });
    const attempt1 = String(first.attempt ?? 1);
    const pids = await waitFor('attempt 1 pids', () => {
      const p = lines(file).flatMap((l) => (l.startsWith(`pid ${attempt1} `) ? [Number(l.split(' ')[2])] : []));
      return p.length === 2 && p;
    });
    const group = pids[0]!; // the task's shell leads its process group
    expect(groupMembers(group)).to.include.members(pids);
    victim = [...ids].find(([, wid]) => wid === first.workerId)![0];
    const survivor = victim === 'a' ? 'b' : 'a';
    const dead = workers.get(victim)!;
    const watchdog = watchdogPids(victim).at(-1)!;
    expect(alive(watchdog), 'the watchdog runs').to.equal(true);

    const killedAt = Date.now();
    await dead.kill9();
    // The watchdog acts when the worker's pipe closes (its log line below says it did); the
    // bounds only catch one that never acts. That the retry never overlaps is checked below.
    await waitFor('attempt 1 processes gone', () => groupMembers(group).length === 0 && !pids.some(alive), 15_000, 20);
    await waitFor('the watchdog to exit', () => !alive(watchdog), 15_000, 20);
    expect(readFileSync(join(dir, `${victim}.log`), 'utf8')).to.match(/worker-node is gone: killed the task processes it left/);

    const second = await waitFor('the retry running', async () => {
      const t = await show(id);
      return t.state === 'TASK_STATE_SCHEDULED' && String(t.attempt) !== attempt1 && t;
    }, 60_000, 200);
    expect(second.workerId).to.equal(ids.get(survivor));
    const attempt2 = String(second.attempt);
    await waitFor('attempt 2 started', () => lines(file).some((l) => l.startsWith(`start ${attempt2} `)));
    // Attempt 2 looked for attempt 1's processes before it recorded its start: none was left.
    expect(lines(file).filter((l) => l.startsWith('overlap'))).to.deep.equal([]);
    const started = lines(file).map((l) => l.split(' '));
    const start2 = Number(started.find(([k, a]) => k === 'start' && a === attempt2)![2]);
    expect(start2).to.be.greaterThan(killedAt);
    await ctl('tasks', 'cancel', '--grace', '100ms', id);
  });

  it('a restarted worker kills the task processes a dead run left and reports them lost', async () => {
    const name = victim ?? 'a';
    await workers.get(name)!.kill9(); // dead already after the first test
    // A leftover as a run killed before its watchdog could act would leave it: marked, in its own group.
    const leftover = spawn('sleep', ['30'], {
      detached: true,
      stdio: 'ignore',
      env: { PATH: process.env.PATH, SCHED_WORKER_ID: ids.get(name)!, SCHED_WORKER_RUN: 'dead-run', SCHED_TASK_ID: 'leftover', SCHED_TASK_ATTEMPT: '3' },
    });
    stray.push(leftover.pid!);
    await waitFor('the leftover to run', () => alive(leftover.pid!));
    await startWorker(name);
    const log = join(dir, `${name}.log`);
    const line = await waitFor('the reap logged', () => lines(log).find((l) => l.includes('killed task processes left by a previous worker process')), 30_000).catch(
      (err: Error) => {
        // Say what the worker did instead (its log since this start), and whether the leftover still runs.
        throw new Error(`${err.message}; leftover ${alive(leftover.pid!) ? 'alive' : 'gone'}; worker log tail:\n${lines(log).slice(-15).join('\n')}`);
      },
    );
    expect(line).to.include('"tasks":["leftover.3"]');
    await waitFor('the leftover killed', () => !alive(leftover.pid!), 15_000, 20);
  });

  it('a program that does not exist: tasks run --wait exits 127 and the task is dead, start-failed', async () => {
    const r = await ctl('tasks', 'run', '--wait', '--', '/nonexistent/program');
    const id = r.stdout.trim();
    const t = await show(id);
    expect(t.error).to.match(/ENOENT/);
    expect({ code: r.code, state: t.state, deadReason: t.deadReason }).to.deep.equal({ code: 127, state: 'TASK_STATE_DEAD', deadReason: 'start-failed' });
    const text = (await ctl('tasks', 'show', id)).stdout;
    expect(text).to.match(/dead/i);
    expect(text).to.match(/start-failed/);
  });
});
