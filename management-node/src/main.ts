import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { Command } from 'commander';
import { ConfigError } from '../../common/config.js';
import { requireRole, serverCredentials } from '../../common/tls.js';
import { serviceDefinition } from '../../common/grpc-service.js';
import { createLogger } from '../../common/logger.js';
import { VERSION } from '../../common/version.js';
import { ManagementService } from '../../proto/gen/sched/v1/management_pb.js';
import { WorkerService } from '../../proto/gen/sched/v1/worker_pb.js';
import { Cluster } from './cluster.js';
import { loadManagerConfig } from './config.js';
import { createMetrics, serveMetrics } from './metrics.js';
import { managementHandlers } from './server/management-service.js';
import { workerHandlers } from './server/worker-service.js';
import { createGroupCommitter } from './store/group-commit.js';
import { ensureSchema, openStore } from './store/open-store.js';
import { decodeTask, decodeWorker, TASKS, WORKERS } from './store/records.js';
import { rangeAll } from './store/store.js';
import type { Task, Worker } from '../../proto/gen/sched/v1/types_pb.js';

const TICK_MS = 100;

async function main(): Promise<void> {
  const opts = new Command('management-node')
    .description('sched management node: accepts tasks, tracks workers, persists state')
    .option('-f, --config <file>', 'config file', '/etc/sched/management-node.yaml')
    .version(VERSION)
    .parse()
    .opts<{ config: string }>();

  const config = loadManagerConfig(opts.config);
  // Read the certificates first: a bad path is a config error, reported before anything starts.
  const credentials = config.tls ? serverCredentials(config.tls) : grpc.ServerCredentials.createInsecure();
  const log = createLogger('management-node', config.log_level);
  const store = openStore(config.store);
  const abort = new AbortController();
  let stopping = false;
  const onSignal = (sig: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal: sig }, 'shutting down');
    abort.abort();
  };
  // A rejected promise nobody handled is a bug in one request's path: logged, not a crash of the
  // whole manager (its state is in the store either way).
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));

  try {
    await ensureSchema(store, log, abort.signal);
  } catch (err) {
    await store.close();
    if (abort.signal.aborted) return;
    throw err;
  }

  const metrics = createMetrics();
  const committer = createGroupCommitter(store, log, metrics.observeCommit);
  const cluster = new Cluster(
    committer,
    {
      pingIntervalMs: config.ping_interval,
      missedPings: config.missed_pings,
      ackTimeoutMs: config.ack_timeout,
      recoveryGraceMs: config.recovery_grace,
      reconnectGraceMs: config.reconnect_grace,
      defaultTaskResources: {
        millicpu: Math.round(config.default_task_cpu * 1000),
        memoryBytes: config.default_task_memory,
      },
      defaultStrategy: config.default_strategy,
      retentionMs: config.retention,
      maxFinishedTasks: config.max_finished_tasks,
      joinToken: config.join_token,
      // A gap between two readings longer than this is the manager's own stall (see fair-clock.ts).
      maxClockStepMs: 3 * TICK_MS,
    },
    log,
  );
  const tasks: Task[] = [];
  const workers: Worker[] = [];
  for await (const kv of rangeAll(store, TASKS)) tasks.push(decodeTask(kv.value));
  for await (const kv of rangeAll(store, WORKERS)) workers.push(decodeWorker(kv.value));
  cluster.load(tasks, workers);
  metrics.attach(cluster);
  log.info({ store: store.description, tasks: tasks.length, workers: workers.length }, 'state loaded');

  const server = new grpc.Server({
    'grpc.keepalive_time_ms': 10_000,
    'grpc.keepalive_timeout_ms': 5_000,
    'grpc.keepalive_permit_without_calls': 1,
    // A connection with no call open this long is closed; workers and clients redial as needed.
    'grpc.max_connection_idle_ms': 5 * 60_000,
    'grpc.max_concurrent_streams': config.max_streams_per_connection,
  });
  const management = managementHandlers(cluster, store.description);
  const workerSide = workerHandlers(cluster, log, { helloTimeoutMs: config.hello_timeout });
  // With TLS, a certificate's role decides which service it may call.
  server.addService(serviceDefinition(ManagementService), (config.tls ? requireRole(management, 'admin') : management) as never);
  server.addService(serviceDefinition(WorkerService), (config.tls ? requireRole(workerSide, 'worker') : workerSide) as never);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(config.listen, credentials, (err, p) => (err ? reject(err) : resolve(p))),
  ).catch((err: Error) => {
    throw new ConfigError(`cannot listen on ${config.listen}: ${err.message}`);
  });
  if (!config.tls) log.warn('serving without TLS (plain TCP): anyone who can reach the port can submit tasks; configure tls for mutual TLS');
  let metricsServer: Awaited<ReturnType<typeof serveMetrics>>['server'] | undefined;
  if (config.metrics_listen) {
    const i = config.metrics_listen.lastIndexOf(':');
    const host = config.metrics_listen.slice(0, i).replace(/^\[|\]$/g, '');
    const bound = await serveMetrics(metrics, host, Number(config.metrics_listen.slice(i + 1))).catch((err: Error) => {
      throw new ConfigError(`cannot listen on metrics_listen ${config.metrics_listen}: ${err.message}`);
    });
    metricsServer = bound.server;
    log.info({ metrics: `http://${config.metrics_listen.slice(0, i)}:${bound.port}/metrics` }, 'serving metrics');
  }
  log.info({ listen: config.listen, port, version: VERSION }, 'management node ready');

  // Deadlines are judged in the check phase, after the poll phase has read the answers already
  // waiting on the sockets: a worker is never timed out for a reply the manager had not read yet.
  let tickImmediate: NodeJS.Immediate | undefined;
  let elu = performance.eventLoopUtilization();
  const ticker = setInterval(() => {
    tickImmediate ??= setImmediate(() => {
      tickImmediate = undefined;
      const since = performance.eventLoopUtilization(elu);
      elu = performance.eventLoopUtilization();
      try {
        cluster.tick(since.utilization);
      } catch (err) {
        log.error({ err }, 'tick failed');
      }
    });
  }, TICK_MS);

  if (!abort.signal.aborted) await new Promise((resolve) => abort.signal.addEventListener('abort', resolve, { once: true }));
  clearInterval(ticker);
  if (tickImmediate) clearImmediate(tickImmediate);
  metricsServer?.close();
  cluster.closeAll('management node shutting down');
  await new Promise<void>((resolve) => {
    const force = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, 2000);
    server.tryShutdown(() => {
      clearTimeout(force);
      resolve();
    });
  });
  await committer.flush();
  await store.close();
  log.info('stopped');
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`management-node: ${err.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`management-node: fatal: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
