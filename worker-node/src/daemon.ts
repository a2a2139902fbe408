// worker-node: dials the manager (the leader of several), runs the processes it is sent, reports back.
import { randomBytes } from 'node:crypto';
import { create } from '@bufbuild/protobuf';
import { Command } from 'commander';
import { ConfigError } from '../../common/config.js';
import { setLongTimeout } from '../../common/long-timer.js';
import { clientCredentials } from '../../common/tls.js';
import { createLogger } from '../../common/logger.js';
import { VERSION } from '../../common/version.js';
import { IsolationSchema } from '../../proto/gen/schedapi/v1/types_pb.js';
import { setupCgroups, type CgroupsSetup } from './cgroups.js';
import { loadWorkerConfig, type WorkerConfig } from './config.js';
import { Executor } from './executor.js';
import { loadWorkerId } from './identity.js';
import { detectNodeInfo } from './node-info.js';
import { Outbox, toFinished } from './outbox.js';
import { privateDir } from './private-fs.js';
import { TaskUsers } from './run-as.js';
import { Session } from './session.js';
import { sweepLogs as sweepTaskLogs } from './task-log.js';
import { Watchdog } from './watchdog.js';

/** How long tasks still running at the shutdown timeout (or a forced stop) get between SIGTERM and SIGKILL. */
const SHUTDOWN_GRACE_MS = 2_000;
/** How often old task logs are looked for. */
const LOG_SWEEP_MS = 3600_000;

function fail(message: string, code: number): never {
  process.stderr.write(`worker-node: ${message}\n`);
  process.exit(code);
}

const opts = new Command('worker-node')
  .description('Runs the tasks a management node sends it')
  .version(VERSION)
  .option('-f, --config <file>', 'config file', '/etc/sched/worker-node.yaml')
  .option('--force', 'on SIGTERM, stop at once and kill running tasks instead of letting them finish')
  .parse()
  .opts<{ config: string; force?: boolean }>();

let config: WorkerConfig;
try {
  config = loadWorkerConfig(opts.config);
} catch (err) {
  fail((err as Error).message, err instanceof ConfigError ? 2 : 1);
}

// run_as and allowed_users name users the system knows (and, unless the worker is root, only its own).
let users: TaskUsers;
try {
  users = TaskUsers.fromConfig(config);
} catch (err) {
  fail(`${opts.config}: ${(err as Error).message}`, err instanceof ConfigError ? 2 : 1);
}

const logger = createLogger('worker-node', config.log_level, config.log_format);
let workerId: string;
let executor: Executor;
let outbox: Outbox;
let cgroups: CgroupsSetup | undefined;
try {
  privateDir(config.data_dir); // before the id file, which is created in it by default
  workerId = loadWorkerId(config.id_file);
  outbox = new Outbox(config.data_dir);
  const runId = randomBytes(8).toString('hex');
  cgroups = setupCgroups({ mode: config.cgroups, workerId, runId, memoryHeadroom: config.memory_headroom, maxPids: config.max_pids, cpuHardLimit: config.cpu_hard_limit });
  executor = new Executor({
    dataDir: config.data_dir,
    workerId,
    runId,
    envInherit: config.env_inherit,
    logMaxBytes: config.log_max_size,
    timeoutGraceMs: config.cancel_grace,
    cgroups: cgroups.cgroups,
    users,
    memoryHeadroom: config.memory_headroom,
  });
} catch (err) {
  cgroups?.cgroups?.discard(); // made for nothing: no watchdog runs yet to remove them
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

if (!cgroups.cgroups) logger.warn({ reason: cgroups.note }, 'task limits are not enforced (memory, cpu, pids): tasks run without cgroups');
else if (cgroups.note) logger.warn({ cgroups: cgroups.version, reason: cgroups.note }, 'some task limits are not enforced');
else logger.info({ cgroups: cgroups.version }, 'each task runs in a cgroup of its own with its limits');
if (process.geteuid?.() === 0 && !users.runAs) logger.warn('tasks run as root; set run_as in the worker config to run them as another user');
if (users.switches && !users.setpriv) {
  logger.warn('setpriv (util-linux) not found: tasks of another user run without its supplementary groups, and join their cgroup only once started');
}
if (outbox.skipped.length > 0) logger.error({ dir: outbox.dir, files: outbox.skipped }, 'unreadable results in the outbox; set aside as *.bad');
// A previous run that died (kill -9) may leave its detached tasks running (when
// its watchdog could not kill them first). They are killed, and each attempt
// goes to the outbox as lost, so the manager hears of it after Welcome (unless
// its real result is there already) and retries it per its policy.
const reaped = executor.reapOrphans();
if (reaped.pids.length > 0) {
  const tasks = reaped.results.map((r) => `${r.taskId}.${r.attempt}`);
  logger.warn({ pids: reaped.pids, tasks }, 'killed task processes left by a previous worker process');
}
for (const result of reaped.results) {
  void outbox.addIfAbsent(toFinished(result)).catch((err: unknown) => logger.error({ err, task: result.taskId }, 'cannot save the result of a killed task'));
}
if (outbox.size > 0) logger.info({ results: outbox.size }, 'results to resend once connected');
// Started before the first task can be: from here on, tasks die with this process however it ends.
const watchdog = new Watchdog({
  workerId,
  runId: executor.runId,
  logger,
  logLevel: config.log_level,
  logFormat: config.log_format,
  cgroupDirs: cgroups.cgroups?.runPaths,
});

const node = detectNodeInfo(config);
node.isolation = create(IsolationSchema, {
  cgroups: cgroups.version,
  limitsNote: cgroups.note,
  runAs: config.run_as ?? '',
  allowedUsers: config.allowed_users,
  defaultMaxPids: config.max_pids,
});
let tlsCredentials: ReturnType<typeof clientCredentials> | undefined;
try {
  tlsCredentials = config.tls ? clientCredentials(config.tls) : undefined;
} catch (err) {
  fail((err as Error).message, 2);
}
if (!tlsCredentials) logger.warn('connecting without TLS (plain TCP); configure tls for mutual TLS');
const session = new Session({
  managers: config.managers,
  token: config.token ?? '',
  workerId,
  node,
  executor,
  outbox,
  logger,
  reconnectIntervalMs: config.reconnect_interval,
  reconnectMaxMs: config.reconnect_max,
  ...(tlsCredentials ? { credentials: tlsCredentials } : {}),
  cancelGraceMs: config.cancel_grace,
});

// Logs of attempts that no longer run, untouched for log_retention, go.
const sweepLogs = (): void => {
  const removed = sweepTaskLogs(executor.logDir, config.log_retention, (file) => {
    const m = /^(.+)\.(\d+)\.std(?:out|err)$/.exec(file);
    return m !== null && executor.get(m[1]!)?.attempt === Number(m[2]);
  });
  if (removed > 0) logger.info({ removed }, 'removed task logs past the log retention');
};
sweepLogs();
const logSweeper = setInterval(sweepLogs, Math.min(LOG_SWEEP_MS, config.log_retention)).unref();
logger.info(
  {
    workerId,
    managers: config.managers,
    dataDir: config.data_dir,
    version: VERSION,
    millicpu: Number(node.capacity.millicpu),
    memoryBytes: Number(node.capacity.memoryBytes),
    labels: node.labels,
  },
  'worker-node starting',
);
session.start();

// Shutdown: the first SIGTERM is graceful (no new tasks, running ones finish for up to
// shutdown_timeout and are reported, the rest are cancelled); a second one, or --force, stops at once.
let stopping: 'graceful' | 'now' | undefined;
let wakeDrain: (() => void) | undefined;
async function shutdown(signal: NodeJS.Signals): Promise<void> {
  if (stopping === 'now') return;
  if (stopping === 'graceful') {
    logger.warn({ signal, running: executor.size }, 'second signal: stopping now');
    stopping = 'now';
    wakeDrain?.();
    return;
  }
  clearInterval(logSweeper);
  stopping = opts.force ? 'now' : 'graceful';
  if (stopping === 'graceful' && executor.size > 0) {
    const deadline = Date.now() + config.shutdown_timeout;
    logger.info({ signal, running: executor.size, timeoutMs: config.shutdown_timeout }, 'shutting down: waiting for running tasks');
    session.leave(`worker-node received ${signal}`, deadline);
    // Woken by each task's end, a second signal, or the deadline: no polling.
    await new Promise<void>((resolve) => {
      const done = (): void => {
        timer.clear();
        executor.off('finished', check);
        resolve();
      };
      const check = (): void => {
        if (executor.size === 0 || stopping !== 'graceful') done();
      };
      const timer = setLongTimeout(done, deadline - Date.now());
      executor.on('finished', check);
      wakeDrain = check;
    });
  }
  logger.info({ signal, running: executor.size }, 'shutting down');
  // What is still running now is killed, not finished: its end is not reported as a result.
  // Goodbye tells the manager to place those tasks again (or mark them dead) at once.
  session.detach();
  await executor.stopAll(SHUTDOWN_GRACE_MS);
  await executor.close(); // this run's cgroups go
  await session.stop(`worker-node received ${signal}`);
  watchdog.close(); // the tasks are gone: it finds nothing and exits
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
