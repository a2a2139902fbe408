// worker-node: dials the manager, runs the processes it is sent, reports back.
import { Command } from 'commander';
import { ConfigError } from '../../common/config.js';
import { createLogger } from '../../common/logger.js';
import { VERSION } from '../../common/version.js';
import { loadWorkerConfig, type WorkerConfig } from './config.js';
import { Executor } from './executor.js';
import { loadWorkerId } from './identity.js';
import { detectNodeInfo } from './node-info.js';
import { Outbox, toFinished } from './outbox.js';
import { Session } from './session.js';

/** How long running tasks get between SIGTERM and SIGKILL when the worker stops. */
const SHUTDOWN_GRACE_MS = 2_000;

function fail(message: string, code: number): never {
  process.stderr.write(`worker-node: ${message}\n`);
  process.exit(code);
}

const opts = new Command('worker-node')
  .description('Runs the tasks a management node sends it')
  .version(VERSION)
  .option('-f, --config <file>', 'config file', '/etc/sched/worker-node.yaml')
  .parse()
  .opts<{ config: string }>();

let config: WorkerConfig;
try {
  config = loadWorkerConfig(opts.config);
} catch (err) {
  fail((err as Error).message, err instanceof ConfigError ? 2 : 1);
}

const logger = createLogger('worker-node', config.log_level);
let workerId: string;
let executor: Executor;
let outbox: Outbox;
try {
  workerId = loadWorkerId(config.id_file);
  executor = new Executor({ dataDir: config.data_dir, workerId });
  outbox = new Outbox(config.data_dir);
} catch (err) {
  fail(`cannot use data_dir ${config.data_dir}: ${(err as Error).message}`, 1);
}

process.on('uncaughtException', (err) => {
  logger.fatal({ err }, 'uncaught exception');
  process.exit(1);
});
process.on('unhandledRejection', (err) => {
  logger.fatal({ err }, 'unhandled rejection');
  process.exit(1);
});

if (outbox.skipped.length > 0) logger.error({ dir: outbox.dir, files: outbox.skipped }, 'unreadable results in the outbox; renamed to *.bad');
// A previous run that died (kill -9) leaves its detached tasks running. They
// are killed, and each attempt's end goes to the outbox so the manager hears
// of it after Welcome (unless its real result is there already).
const reaped = executor.reapOrphans();
if (reaped.pids.length > 0) {
  const tasks = reaped.results.map((r) => `${r.taskId}.${r.attempt}`);
  logger.warn({ pids: reaped.pids, tasks }, 'killed task processes left by a previous worker process');
}
for (const result of reaped.results) {
  void outbox.addIfAbsent(toFinished(result)).catch((err: unknown) => logger.error({ err, task: result.taskId }, 'cannot save the result of a killed task'));
}
if (outbox.size > 0) logger.info({ results: outbox.size }, 'results to resend once connected');

const node = detectNodeInfo(config);
const session = new Session({
  manager: config.manager,
  token: config.token ?? '',
  workerId,
  node,
  executor,
  outbox,
  logger,
  reconnectIntervalMs: config.reconnect_interval,
  cancelGraceMs: config.cancel_grace,
});
logger.info(
  {
    workerId,
    manager: config.manager,
    dataDir: config.data_dir,
    version: VERSION,
    millicpu: Number(node.capacity.millicpu),
    memoryBytes: Number(node.capacity.memoryBytes),
    labels: node.labels,
  },
  'worker-node starting',
);
session.start();

let stopping = false;
async function shutdown(signal: NodeJS.Signals): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info({ signal, running: executor.size }, 'shutting down');
  // Goodbye goes out first, so the manager reschedules at once instead of
  // waiting out the reconnect grace; the killed tasks' results are not sent.
  await Promise.all([session.stop(`worker-node received ${signal}`), executor.stopAll(SHUTDOWN_GRACE_MS)]);
  await outbox.flush(); // results still being written
  logger.info('stopped');
  // Everything is closed, so the event loop should drain now; if some handle
  // lingers, do not hang the service manager.
  setTimeout(() => {
    logger.warn('open handles after shutdown; exiting anyway');
    process.exit(0);
  }, 5_000).unref();
}
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void shutdown(signal));
