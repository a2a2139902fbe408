import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { Command } from 'commander';
import { ConfigError } from '../../common/config.js';
import { requireRole, serverCredentials } from '../../common/tls.js';
import { serviceDefinition } from '../../common/grpc-service.js';
import { createLogger } from '../../common/logger.js';
import { VERSION } from '../../common/version.js';
import { ManagementService } from '../../proto/gen/schedapi/v1/management_pb.js';
import { WorkerService } from '../../proto/gen/schedapi/v1/worker_pb.js';
import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { ShuttingDownError, StartingError } from '../../common/errors.js';
import { Cluster } from './cluster.js';
import { loadManagerConfig } from './config.js';
import { Leadership } from './leadership.js';
import { createMetrics, serveMetrics } from './metrics.js';
import { gate } from './server/gate.js';
import { followerStatus, managementHandlers, type HaStatus, type ManagementHandlers } from './server/management-service.js';
import { workerHandlers, type WorkerHandlers } from './server/worker-service.js';
import { createGroupCommitter, type GroupCommitter } from './store/group-commit.js';
import { ensureSchema, openStore, retryStore } from './store/open-store.js';
import { lockStoreDir } from './store/owner-lock.js';
import { decodeSchedule, decodeTask, decodeWorker, SCHEDULES, TASKS, WORKERS } from './store/records.js';
import { rangeAll } from './store/store.js';
import type { Schedule, Task, Worker } from '../../proto/gen/schedapi/v1/types_pb.js';

const TICK_MS = 100;

/** The address others reach a manager by: the listen host (this machine's name for a wildcard) with the bound port. */
function advertised(listen: string, port: number): string {
  const host = listen.slice(0, listen.lastIndexOf(':'));
  return `${['0.0.0.0', '::', '[::]', ''].includes(host) ? hostname() : host}:${port}`;
}

/** The embedded store's directory, made (0700) if needed so that it can be locked before it is opened. */
function prepareDir(path: string): string {
  mkdirSync(path, { recursive: true, mode: 0o700 });
  return path;
}

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
  const log = createLogger('management-node', config.log_level, config.log_format);
  const releaseLock = config.store.type === 'embedded' ? lockStoreDir(prepareDir(config.store.path)) : () => undefined;
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

  // Several managers on one etcd: one leads (leadership.ts). The embedded store has one manager, which leads.
  let elected!: () => void;
  const electedOnce = new Promise<void>((resolve) => (elected = resolve));
  // eslint-disable-next-line prefer-const -- set once the port is bound; the handlers made before it read it
  let leadership: Leadership | undefined;
  let advertise = config.advertise ?? config.listen;
  const mayAct = () => leadership?.mayAct() ?? true;

  const metrics = createMetrics();
  let leading: { management: ManagementHandlers; worker: WorkerHandlers } | undefined;
  const haStatus = (): HaStatus => ({
    role: leadership?.role ?? 'leader',
    leader: leadership ? (leadership.leader?.address ?? '') : advertise,
    term: leadership?.term ?? 0n,
    managers: leadership ? [...leadership.managers.values()].sort() : [advertise],
  });
  const server = new grpc.Server({
    'grpc.keepalive_time_ms': 10_000,
    'grpc.keepalive_timeout_ms': 5_000,
    'grpc.keepalive_permit_without_calls': 1,
    // A connection with no call open this long is closed; workers and clients redial as needed.
    'grpc.max_connection_idle_ms': 5 * 60_000,
    'grpc.max_concurrent_streams': config.max_streams_per_connection,
  });
  const refusal = () => (stopping ? new ShuttingDownError() : leadership && !leadership.isLeader ? leadership.notLeader() : new StartingError());
  const management = gate(ManagementService, {
    leading: () => (leading && mayAct() ? leading.management : undefined),
    refusal,
    followerHandlers: { status: followerStatus(store.description, haStatus) },
  });
  const workerSide = gate(WorkerService, { leading: () => (leading && mayAct() ? leading.worker : undefined), refusal });
  // With TLS, a certificate's role decides which service it may call.
  server.addService(serviceDefinition(ManagementService), (config.tls ? requireRole(management, 'admin') : management) as never);
  server.addService(serviceDefinition(WorkerService), (config.tls ? requireRole(workerSide, 'worker') : workerSide) as never);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(config.listen, credentials, (err, p) => (err ? reject(err) : resolve(p))),
  ).catch((err: Error) => {
    throw new ConfigError(`cannot listen on ${config.listen}: ${err.message}`);
  });
  // What followers tell workers and clients: the configured address, else the bound one.
  advertise = config.advertise ?? advertised(config.listen, port);
  leadership =
    config.store.type === 'etcd'
      ? new Leadership(store, {
          address: advertise,
          leaseMs: config.leader_lease,
          log,
          onElected: () => elected(),
          // Crash-only: a manager that may no longer lead stops at once, sending and writing
          // nothing more; its supervisor starts it again, as a follower.
          onDeposed: (why) => {
            process.stderr.write(`management-node: no longer the leader (${why}); exiting\n`);
            process.exit(EXIT_DEPOSED);
          },
        })
      : undefined;
  if (!leadership) elected();
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
  metrics.attachLeadership(haStatus);
  log.info({ listen: config.listen, port, version: VERSION }, 'management node listening');

  const shutdown = async (cluster?: Cluster, committer?: GroupCommitter) => {
    metricsServer?.close();
    cluster?.closeAll('management node shutting down');
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
    await committer?.flush();
    // Revoking the lease hands leadership over at once rather than after its TTL.
    await leadership?.stop();
    await store.close();
    releaseLock();
    log.info('stopped');
  };

  try {
    if (leadership) await retryStore(store, log, abort.signal, () => leadership.start());
    await Promise.race([electedOnce, new Promise((resolve) => abort.signal.addEventListener('abort', resolve, { once: true }))]);
    if (abort.signal.aborted) return await shutdown();
    const writable = leadership ? leadership.fenced() : store;
    await ensureSchema(writable, log, abort.signal);
  } catch (err) {
    await shutdown();
    if (abort.signal.aborted) return;
    throw err;
  }

  const committer = createGroupCommitter(leadership ? leadership.fenced() : store, log, metrics.observeCommit);
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
      mayAct,
    },
    log,
  );
  const tasks: Task[] = [];
  const workers: Worker[] = [];
  const schedules: Schedule[] = [];
  await retryStore(store, log, abort.signal, async () => {
    tasks.length = 0;
    workers.length = 0;
    schedules.length = 0;
    for await (const kv of rangeAll(store, TASKS)) tasks.push(decodeTask(kv.value));
    for await (const kv of rangeAll(store, WORKERS)) workers.push(decodeWorker(kv.value));
    for await (const kv of rangeAll(store, SCHEDULES)) schedules.push(decodeSchedule(kv.value));
  }).catch(() => undefined);
  if (abort.signal.aborted) return await shutdown(undefined, committer);
  cluster.load(tasks, workers);
  cluster.schedules.load(schedules);
  metrics.attach(cluster);
  log.info({ store: store.description, tasks: tasks.length, workers: workers.length, schedules: schedules.length }, 'state loaded');
  leading = {
    management: managementHandlers(cluster, store.description, haStatus),
    worker: workerHandlers(cluster, log, { helloTimeoutMs: config.hello_timeout }),
  };
  log.info({ listen: config.listen, port, version: VERSION, term: String(leadership?.term ?? 0n) }, 'management node ready');

  // Deadlines are judged in the check phase, after the poll phase has read the answers already
  // waiting on the sockets: a worker is never timed out for a reply the manager had not read yet.
  let tickImmediate: NodeJS.Immediate | undefined;
  let elu = performance.eventLoopUtilization();
  const ticker = setInterval(() => {
    // Judged here, in the timers phase, before the poll phase reads what workers sent meanwhile:
    // a leader thawed after its lease ran out steps down before it handles anything.
    if (!mayAct()) return;
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
  leading = undefined;
  await shutdown(cluster, committer);
}

/** The exit status of a manager that found it may no longer lead. */
const EXIT_DEPOSED = 3;

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
