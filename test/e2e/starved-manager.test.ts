// A starved manager: the real management-node binary and a fleet of 300 fake workers share ONE
// core (taskset -c 0) while three bulk submissions of 3,000 tasks each arrive at once. A manager
// that cannot keep up must slow down, not misjudge: no healthy worker may be dropped for "missed
// pings", no offer may time out into a second execution, and every task must end done, once.
//
//   node_modules/.bin/mocha test/e2e/starved-manager.test.ts
//   STARVED_WORKERS=300 STARVED_BATCHES=3 STARVED_BATCH=3000 (defaults) to scale it.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { createServiceClient, type ServiceClient } from '../../common/grpc-service.js';
import { ManagementService } from '../../proto/gen/schedapi/v1/management_pb.js';
import { TaskState, type Task } from '../../proto/gen/schedapi/v1/types_pb.js';
import { freePorts } from '../support/etcd.js';
import type { Execution, StreamEnd } from '../support/fake-worker.js';
import { BIN, ROOT, startDaemon, waitFor, writeYaml, type Daemon } from '../support/processes.js';

const WORKERS = Number(process.env.STARVED_WORKERS ?? 300);
const BATCHES = Number(process.env.STARVED_BATCHES ?? 3);
const BATCH = Number(process.env.STARVED_BATCH ?? 3000);
const TOTAL = BATCHES * BATCH;
/** Core of the fleet: 0 = the manager's (the test); STARVED_FLEET_CPU=1 is a control run with the fleet on its own core. */
const FLEET_CPU = process.env.STARVED_FLEET_CPU ?? '0';
const SUBMIT_BOUND_MS = 60_000;
const SETTLE_BOUND_MS = 90_000;
/** SCHED_BIN_ROOT=<dir>: test the binaries built under another checkout (e.g. a `git archive HEAD` copy). */
const MANAGER = process.env.SCHED_BIN_ROOT ? join(process.env.SCHED_BIN_ROOT, 'management-node/bin/management-node') : BIN.manager;

type Client = ServiceClient<(typeof ManagementService)['method']>;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tasksetMissing(): string | undefined {
  const r = spawnSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' });
  if (r.error) return `taskset not available (${r.error.message}): install util-linux`;
  if (r.status !== 0) return `taskset -c 0 true failed (exit ${r.status}): cannot pin to core 0 here`;
  return undefined;
}

/** CPU seconds (user + system) a live process has used, from /proc/<pid>/stat; undefined once it is gone. */
function cpuSeconds(pid: number): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

interface Figures {
  submitted: number;
  submitErrors: string[];
  settled: boolean;
  settleError?: string;
  settleMs: number;
  listed: Task[];
  byState: Record<string, number>;
  executions: Execution[];
  managerClosed: StreamEnd[];
  logDisconnects: string[];
  logAckTimeouts: number;
  metricAckTimeouts: number | undefined;
  metricOffers: number | undefined;
}

describe('e2e: a manager starved of CPU (manager and 300 fake workers on one core)', function () {
  this.timeout(300_000);
  let dir: string;
  let manager: Daemon | undefined;
  let fleet: Daemon | undefined;
  let client: Client | undefined;
  let metricsPort: number;
  let fleetOut: string;
  let figures: Figures | undefined;

  before(async function () {
    const why = tasksetMissing();
    if (why) {
      console.log(`      skipped: ${why}`);
      this.skip();
    }
    for (const bin of [MANAGER]) if (!existsSync(bin)) throw new Error(`${bin} missing: run node build.mjs first`);
    dir = mkdtempSync(join(tmpdir(), 'sched-starved-'));
    let port: number;
    [port, metricsPort] = (await freePorts(2)) as [number, number];
    const yaml = writeYaml(
      join(dir, 'manager.yaml'),
      [
        `listen: 127.0.0.1:${port}`,
        `store: {type: embedded, path: ${join(dir, 'store')}}`,
        'ping_interval: 500ms',
        'ack_timeout: 1s',
        'reconnect_grace: 10s',
        `metrics_listen: 127.0.0.1:${metricsPort}`,
        'log_level: info',
        '',
      ].join('\n'),
    );
    manager = startDaemon('taskset', ['-c', '0', MANAGER, '-f', yaml], join(dir, 'manager.log'));
    client = createServiceClient(ManagementService, `127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 500,
    });
    await waitFor('manager answers Status', () => client!.status({}, { deadlineMs: 1000 }), 20_000, 100).catch((err: Error) => {
      throw new Error(`${err.message}\nmanager log:\n${manager!.log().slice(-3000)}`);
    });
    fleetOut = join(dir, 'fleet.json');
    const tsx = pathToFileURL(join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href;
    fleet = startDaemon(
      'taskset',
      ['-c', FLEET_CPU, process.execPath, '--import', tsx, join(ROOT, 'bench/fleet.ts'), '--manager', `127.0.0.1:${port}`, '--workers', String(WORKERS), '--out', fleetOut, '--prefix', 'starved'],
      join(dir, 'fleet.log'),
    );
    await waitFor(
      `${WORKERS} fake workers welcomed`,
      () => {
        const log = fleet!.log();
        if (/"event":"error"/.test(log) || fleet!.child.exitCode !== null) throw new Error(`fleet failed:\n${log.slice(-2000)}`);
        return /"event":"ready"/.test(log);
      },
      90_000,
      200,
    );
    await waitFor(`manager sees ${WORKERS} workers`, async () => (await client!.status({}, { deadlineMs: 5000 })).workersConnected === WORKERS, 30_000, 250);
  });

  after(async () => {
    client?.close();
    await fleet?.stop();
    await manager?.stop();
    if (dir && !process.env.KEEP_STARVED_DIR) rmSync(dir, { recursive: true, force: true });
    else if (dir) console.log(`      kept ${dir}`);
  });

  /** One RunTask of `count`, retried with the same idempotency key while the manager is unavailable or slow. */
  async function submit(key: string, count: number): Promise<Task[]> {
    const end = Date.now() + SUBMIT_BOUND_MS;
    for (;;) {
      try {
        const res = await client!.runTask({ spec: { argv: ['true'] }, count, idempotencyKey: key }, { deadlineMs: 30_000 });
        return res.tasks.length > 0 ? res.tasks : res.task ? [res.task] : [];
      } catch (err) {
        const code = (err as grpc.ServiceError).code;
        if ((code !== grpc.status.UNAVAILABLE && code !== grpc.status.DEADLINE_EXCEEDED) || Date.now() > end) throw err;
        await sleep(200);
      }
    }
  }

  async function listAll(): Promise<Task[]> {
    const all: Task[] = [];
    let pageToken = '';
    for (let pages = 0; pages < 1000; pages++) {
      const res = await client!.listTasks({ limit: 1000, pageToken }, { deadlineMs: 30_000 });
      all.push(...res.tasks);
      if (!res.nextPageToken) break;
      pageToken = res.nextPageToken;
    }
    return all;
  }

  async function scrape(): Promise<string> {
    try {
      const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { signal: AbortSignal.timeout(10_000) });
      return await res.text();
    } catch {
      return '';
    }
  }
  const metric = (text: string, name: string) => {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
    return m ? Number(m[1]) : undefined;
  };

  it(`runs ${BATCHES} concurrent bulk submissions of ${BATCH} tasks to the end within the bound`, async () => {
    const submitErrors: string[] = [];
    const t0 = Date.now();
    const results = await Promise.all(
      Array.from({ length: BATCHES }, (_, i) =>
        submit(`starved-${process.pid}-${t0}-${i}`, BATCH).catch((err: grpc.ServiceError) => {
          submitErrors.push(`batch ${i}: ${err.code} ${err.details ?? err.message}`);
          return [] as Task[];
        }),
      ),
    );
    const submitted = results.reduce((n, r) => n + r.length, 0);
    const submitMs = Date.now() - t0;
    let settled = true;
    let settleError: string | undefined;
    try {
      await waitFor(
        `all ${submitted} tasks done or dead`,
        async () => {
          const s = await client!.status({}, { deadlineMs: 10_000 });
          const by = s.tasksByState;
          return (by.pending ?? 0) + (by.scheduled ?? 0) === 0 && (by.done ?? 0) + (by.dead ?? 0) >= submitted;
        },
        SETTLE_BOUND_MS,
        500,
      );
    } catch (err) {
      settled = false;
      settleError = (err as Error).message;
    }
    const settleMs = Date.now() - t0;
    const listed = await listAll();
    const byState: Record<string, number> = {};
    for (const t of listed) byState[TaskState[t.state]] = (byState[TaskState[t.state]] ?? 0) + 1;
    const text = await scrape();
    const cpu = { manager: cpuSeconds(manager!.pid), fleet: cpuSeconds(fleet!.pid) };
    await fleet!.stop(15_000);
    const report = existsSync(fleetOut)
      ? (JSON.parse(readFileSync(fleetOut, 'utf8')) as { executions: Execution[]; managerClosed: StreamEnd[]; lagP99Ms?: number; lagMaxMs?: number })
      : { executions: [], managerClosed: [] };
    const log = manager!.log().split('\n');
    figures = {
      submitted,
      submitErrors,
      settled,
      ...(settleError ? { settleError } : {}),
      settleMs,
      listed,
      byState,
      executions: report.executions,
      managerClosed: report.managerClosed,
      // The manager's own verdicts (not the fleet ending its streams when it stops).
      logDisconnects: log.filter((l) => /worker disconnected/.test(l) && /no pong for|missed \d+ pings|no answer|does not read|did not answer/.test(l)),
      logAckTimeouts: log.filter((l) => /no answer to offer within the ack timeout/.test(l)).length,
      metricAckTimeouts: metric(text, 'sched_offers_timed_out_total'),
      metricOffers: metric(text, 'sched_offers_total'),
    };
    const ids = new Set(report.executions.map((e) => e.taskId));
    console.log(
      [
        `      tasks: ${submitted} acknowledged, ${listed.length} listed ${JSON.stringify(byState)}; submit ${submitMs} ms, settled ${settled} after ${settleMs} ms`,
        `      executions: ${report.executions.length} (${ids.size} distinct tasks, ${report.executions.length - ids.size} repeats)`,
        `      false disconnects: ${report.managerClosed.length} streams closed by the manager; ${figures.logDisconnects.length} disconnect/missed-ping log lines`,
        `      CPU seconds: manager ${cpu.manager ?? 'n/a'}, fleet ${cpu.fleet ?? 'n/a'} (manager on core 0, fleet on core ${FLEET_CPU}); fleet event-loop lag p99 ${report.lagP99Ms ?? '?'} ms, max ${report.lagMaxMs ?? '?'} ms`,
        `      ack timeouts: metric ${figures.metricAckTimeouts ?? 'n/a'}, log ${figures.logAckTimeouts}; offers ${figures.metricOffers ?? 'n/a'}`,
        ...(submitErrors.length ? [`      submit errors: ${submitErrors.join('; ')}`] : []),
        ...(report.managerClosed.slice(0, 3).map((e) => `      e.g. closed: ${e.workerId} code ${e.code} ${e.details}`)),
        ...(figures.logDisconnects.slice(0, 3).map((l) => `      e.g. log: ${l.slice(0, 300)}`)),
      ].join('\n'),
    );
    expect(submitErrors, 'every bulk submission is acknowledged').to.deep.equal([]);
    expect(submitted).to.equal(TOTAL);
    expect(settled, settleError).to.equal(true);
  });

  it('every task is done, and there are exactly as many as submitted', function () {
    if (!figures) this.skip();
    expect(figures.listed.length, 'tasks listed').to.equal(TOTAL);
    expect(figures.byState, 'tasks by state').to.deep.equal({ DONE: TOTAL });
  });

  it('the fleet ran each task exactly once (executions = tasks, no task id twice)', function () {
    if (!figures) this.skip();
    const count = new Map<string, number>();
    for (const e of figures.executions) count.set(e.taskId, (count.get(e.taskId) ?? 0) + 1);
    const twice = [...count].filter(([, n]) => n > 1);
    expect(twice.length, `tasks run more than once, e.g. ${JSON.stringify(twice.slice(0, 3))}`).to.equal(0);
    expect(figures.executions.length, 'executions').to.equal(figures.listed.length);
  });

  it('no fake worker was disconnected by the manager', function () {
    if (!figures) this.skip();
    const sample = figures.managerClosed.slice(0, 3).map((e) => `${e.workerId}: ${e.code} ${e.details}`);
    expect(figures.managerClosed.length, `streams closed by the manager, e.g. ${sample.join('; ')}`).to.equal(0);
    expect(figures.logDisconnects.length, `manager log: ${figures.logDisconnects.slice(0, 2).join('\n')}`).to.equal(0);
  });
});
