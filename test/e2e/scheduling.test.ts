// Resource-aware placement with the built binaries: three workers of
// different sizes and labels, fifty tasks of mixed requests. Each task logs
// when it starts and ends on which worker (SCHED_WORKER_ID), which is the
// ground truth for "never over capacity" and "constraints respected".
import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, run, startDaemon, startManager, waitFor, writeYaml, type Daemon } from '../support/processes.js';

interface WorkerSetup {
  name: string;
  cpu: number;
  memMi: number;
  labels: Record<string, string>;
}

const WORKERS: WorkerSetup[] = [
  { name: 'small', cpu: 1, memMi: 512, labels: { zone: 'a' } },
  { name: 'big', cpu: 4, memMi: 4096, labels: { zone: 'b' } },
  { name: 'gpu', cpu: 2, memMi: 2048, labels: { zone: 'b', gpu: 'true' } },
];

describe('e2e: resource-aware scheduling', function () {
  this.timeout(120_000);
  let dir: string;
  let address: string;
  const daemons = new Map<string, Daemon>();
  const ids = new Map<string, string>(); // worker id → name
  const idOf = (name: string) => [...ids].find(([, n]) => n === name)![0];
  const ctl = (...args: string[]) => run(BIN.schedctl, ['--manager', address, ...args]);
  const connected = async () => (await ctl('workers', 'ls')).stdout.match(/\bconnected\b/g)?.length ?? 0;
  const startWorker = (w: WorkerSetup) => {
    const labels = Object.entries(w.labels).map(([k, v]) => `${k}: "${v}"`).join(', ');
    const yaml = writeYaml(
      join(dir, `${w.name}.yaml`),
      `manager: ${address}\ndata_dir: ${join(dir, w.name)}\nreconnect_interval: 200ms\ncapacity: {cpu: ${w.cpu}, memory: ${w.memMi}Mi}\nlabels: {${labels}}\n`,
    );
    daemons.set(w.name, startDaemon(BIN.worker, ['-f', yaml], join(dir, `${w.name}.log`)));
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sched-place-'));
    const manager = await startManager({
      config: `store: {type: embedded, path: ${join(dir, 'store')}}\nping_interval: 300ms\nreconnect_grace: 1s\n`,
      yamlFile: join(dir, 'manager.yaml'),
      logFile: join(dir, 'manager.log'),
    });
    daemons.set('manager', manager.daemon);
    address = manager.address;
    for (const w of WORKERS) startWorker(w);
    await waitFor('three workers', async () => (await connected()) === 3);
    for (const w of WORKERS) ids.set(readFileSync(join(dir, w.name, 'worker-id'), 'utf8').trim(), w.name);
  });

  after(async () => {
    await Promise.all([...daemons.values()].map((d) => d.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs 50 mixed tasks, never over any worker\'s capacity, with every constraint respected', async () => {
    const log = join(dir, 'events.log');
    const kinds = [
      { cpu: 0.5, memMi: 128, labels: [] as string[] },
      { cpu: 1, memMi: 256, labels: [] },
      { cpu: 2, memMi: 1024, labels: [] },
      { cpu: 1, memMi: 512, labels: ['gpu=true'] },
      { cpu: 0.25, memMi: 64, labels: ['zone=a'] },
    ];
    // One task file of 50 entries (as an operator would submit a batch): one schedctl, ids in entry order.
    const script = `echo "$(date +%s%N) start $SCHED_WORKER_ID $SCHED_TASK_ID" >> ${log}; sleep 0.2; echo "$(date +%s%N) end $SCHED_WORKER_ID $SCHED_TASK_ID" >> ${log}`;
    const entries = Array.from({ length: 50 }, (_, i) => kinds[i % kinds.length]!);
    const file = join(dir, 'mixed.json');
    writeFileSync(
      file,
      JSON.stringify(
        entries.map((k) => ({
          argv: ['sh', '-c', script],
          cpu: k.cpu,
          mem: `${k.memMi}Mi`,
          labels: Object.fromEntries(k.labels.map((l) => l.split('='))),
        })),
      ),
    );
    const r = await ctl('tasks', 'run', '-f', file);
    expect(r.code, r.stderr).to.equal(0);
    const taskIds = r.stdout.trim().split('\n');
    expect(taskIds).to.have.length(50);
    const submitted = entries.map((k, i) => ({ id: taskIds[i]!, ...k }));
    const ours = new Set(submitted.map((t) => t.id));
    await waitFor('all 50 done', async () => {
      const out = JSON.parse((await ctl('tasks', 'ls', '--state', 'done', '--limit', '0', '-o', 'json')).stdout) as { tasks?: Array<{ id: string }> };
      return (out.tasks ?? []).filter((t) => ours.has(t.id)).length === 50;
    }, 90_000, 500);

    const byTask = new Map(submitted.map((t) => [t.id, t]));
    const events = readFileSync(log, 'utf8').trim().split('\n').map((line) => {
      const [ts, kind, worker, task] = line.split(' ');
      return { ts: BigInt(ts!), kind: kind!, worker: worker!, task: task! };
    });
    events.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : a.kind === 'end' ? -1 : 1));
    expect(events.filter((e) => e.kind === 'start')).to.have.length(50);
    const usage = new Map<string, { cpu: number; mem: number }>();
    for (const e of events) {
      const t = byTask.get(e.task)!;
      const name = ids.get(e.worker)!;
      const setup = WORKERS.find((w) => w.name === name)!;
      for (const label of t.labels) {
        const [k, v] = label.split('=') as [string, string];
        expect(setup.labels[k], `${e.task} on ${name} needs ${label}`).to.equal(v);
      }
      const u = usage.get(name) ?? { cpu: 0, mem: 0 };
      const sign = e.kind === 'start' ? 1 : -1;
      u.cpu += sign * t.cpu;
      u.mem += sign * t.memMi;
      usage.set(name, u);
      expect(u.cpu, `${name} cpu`).to.be.at.most(setup.cpu + 1e-9);
      expect(u.mem, `${name} memory`).to.be.at.most(setup.memMi);
    }
  });

  it('explains why a task cannot be placed', async () => {
    const id = (await ctl('tasks', 'run', '--mem', '64Gi', '--', 'true')).stdout.trim();
    await waitFor('pending reason', async () => /insufficient memory/.test((await ctl('tasks', 'show', id)).stdout));
    const show = (await ctl('tasks', 'show', id)).stdout;
    expect(show).to.match(/0\/3 workers fit: 3 insufficient memory/);
    expect((await ctl('tasks', 'cancel', id)).code).to.equal(0);
  });

  it('a killed worker\'s tasks run again elsewhere when retries allow, and die when they do not', async () => {
    await waitFor('three workers', async () => (await connected()) === 3);
    const marker = join(dir, 'retry');
    const script = `echo "$SCHED_WORKER_ID" >> ${marker}.$SCHED_TASK_ID; sleep 30`;
    const firstWorker = async (id: string) =>
      waitFor(`${id} running`, () => existsSync(`${marker}.${id}`) && readFileSync(`${marker}.${id}`, 'utf8').trim().split('\n')[0]);
    // Both tasks go to the victim: "big", the other zone=b worker, takes nothing while they are placed.
    const big = idOf('big');
    expect((await ctl('workers', 'drain', big)).code).to.equal(0);
    const retried = (await ctl('tasks', 'run', '--label', 'zone=b', '--retries', '1', '--', 'sh', '-c', script)).stdout.trim();
    const once = (await ctl('tasks', 'run', '--label', 'zone=b', '--', 'sh', '-c', script)).stdout.trim();
    const [w1, w2] = [await firstWorker(retried), await firstWorker(once)];
    const victim = ids.get(w1)!;
    expect(victim).to.equal('gpu');
    expect(w2, 'both tasks on the same worker').to.equal(w1);
    expect((await ctl('workers', 'undrain', big)).code).to.equal(0);
    // Kill the worker that runs both (-9: no goodbye).
    await daemons.get(victim)!.kill9();
    await waitFor('retried task runs on another worker', () => {
      const lines = readFileSync(`${marker}.${retried}`, 'utf8').trim().split('\n');
      return lines.length === 2 && lines[1] !== w1;
    }, 30_000);
    expect(ids.get(readFileSync(`${marker}.${retried}`, 'utf8').trim().split('\n')[1]!)).to.equal('big');
    await waitFor('task without retries dead', async () => /Dead reason:\s+worker-lost/.test((await ctl('tasks', 'show', once)).stdout), 30_000);
    expect(readFileSync(`${marker}.${once}`, 'utf8').trim().split('\n'), 'it never ran again').to.deep.equal([w1]);
    const show = (await ctl('tasks', 'show', retried)).stdout;
    expect(show).to.match(/Attempt:\s+2/);
    expect(show).to.match(/State:\s+scheduled/);
    await ctl('tasks', 'cancel', '--grace', '100ms', retried);
    startWorker(WORKERS.find((w) => w.name === victim)!);
  });
});
