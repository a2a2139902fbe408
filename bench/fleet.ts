// A fleet of fake workers as its own process (see test/support/fake-worker.ts), so it can be
// pinned to a core of its choosing (taskset) apart from the test that drives it.
//
//   node --import tsx bench/fleet.ts --manager 127.0.0.1:7070 --workers 300 --out fleet.json
//
// Prints one JSON line when every worker is welcomed ({"event":"ready",...}) and one every
// --stats-ms; on SIGTERM or SIGINT writes {executions, managerClosed, ...} to --out and exits 0.
import { writeFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { FakeFleet } from '../test/support/fake-worker.js';

const { values } = parseArgs({
  options: {
    manager: { type: 'string', default: '127.0.0.1:7070' },
    workers: { type: 'string', default: '300' },
    'per-channel': { type: 'string', default: '50' },
    'run-delay-ms': { type: 'string', default: '0' },
    'answer-delay-ms': { type: 'string', default: '0' },
    millicpu: { type: 'string', default: '4000' },
    memory: { type: 'string', default: String(8 * 1024 ** 3) },
    prefix: { type: 'string', default: 'fake' },
    out: { type: 'string' },
    'stats-ms': { type: 'string', default: '2000' },
  },
});

const fleet = new FakeFleet({
  address: values.manager,
  count: Number(values.workers),
  idPrefix: values.prefix,
  workersPerChannel: Number(values['per-channel']),
  runDelayMs: Number(values['run-delay-ms']),
  answerDelayMs: Number(values['answer-delay-ms']),
  capacity: { millicpu: BigInt(values.millicpu), memoryBytes: BigInt(values.memory) },
});

// The fleet's own event-loop lag: if this is small, slow answers are the manager's doing.
const lag = monitorEventLoopDelay({ resolution: 20 });
lag.enable();
const line = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);
const stats = () => ({
  connected: fleet.connected(),
  executions: fleet.executions.length,
  managerClosed: fleet.managerClosed.length,
  unacked: fleet.unacked(),
  lagP99Ms: Math.round(lag.percentile(99) / 1e6),
  lagMaxMs: Math.round(lag.max / 1e6),
});

let finished = false;
function finish(code: number, error?: string): void {
  if (finished) return;
  finished = true;
  const report = {
    ...stats(),
    error,
    executions: fleet.executions,
    managerClosed: fleet.managerClosed,
  };
  if (values.out) writeFileSync(values.out, JSON.stringify(report));
  line({ event: 'exit', ...stats() });
  fleet.stop();
  process.exit(code);
}
process.on('SIGTERM', () => finish(0));
process.on('SIGINT', () => finish(0));

const t0 = Date.now();
fleet.start(120_000).then(
  () => line({ event: 'ready', ms: Date.now() - t0, ...stats() }),
  (err: Error) => {
    line({ event: 'error', message: err.message, ...stats() });
    finish(1, err.message);
  },
);
setInterval(() => line({ event: 'stats', ...stats() }), Number(values['stats-ms']));
