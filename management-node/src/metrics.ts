// Prometheus metrics of the management node, served at http://<metrics_listen>/metrics.
// Gauges and totals are read from the cluster when scraped (nothing is counted
// twice, nothing costs anything between scrapes); store commit latency is a
// histogram fed by the group committer.
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Cluster } from './cluster.js';
import type { CommitObserver } from './store/group-commit.js';

/** Running totals since start, kept by the cluster's parts and exported as Prometheus counters. */
export interface ClusterStats {
  submitted: number;
  offers: number;
  rejected: number;
  ackTimeouts: number;
  retried: number;
  done: number;
  /** Dead tasks by reason (the part before any ":"). */
  dead: Map<string, number>;
}

export interface Metrics {
  readonly registry: Registry;
  /** For createGroupCommitter: every store transaction's latency and size. */
  readonly observeCommit: CommitObserver;
  /** Starts reading the cluster; call once it exists. */
  attach(cluster: Cluster): void;
  /** Starts reading who leads (followers too). */
  attachLeadership(read: () => { role: string; term: bigint; managers: string[] }): void;
}

/** A counter whose value is a running total kept elsewhere, read at scrape time. */
function totalCounter(registry: Registry, name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'sched_manager_' });
  let cluster: Cluster | undefined;
  const commitSeconds = new Histogram({
    name: 'sched_store_commit_seconds',
    help: 'Latency of one store transaction (a group-committed batch)',
    labelNames: ['result'],
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
    registers: [registry],
  });
  const commitOps = new Histogram({
    name: 'sched_store_commit_ops',
    help: 'Writes per store transaction',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128],
    registers: [registry],
  });
  new Gauge({
    name: 'sched_tasks',
    help: 'Tasks kept by the manager, by state',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [state, n] of Object.entries(cluster?.counts().tasksByState ?? {})) this.set({ state }, n);
    },
  });
  new Gauge({
    name: 'sched_workers',
    help: 'Workers known to the manager, by state',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const c = cluster?.counts();
      this.set({ state: 'connected' }, c?.workersConnected ?? 0);
      this.set({ state: 'disconnected' }, (c?.workersTotal ?? 0) - (c?.workersConnected ?? 0));
    },
  });
  new Gauge({
    name: 'sched_queue_tasks',
    help: 'Pending tasks by where they wait: queued for placement, offered to a worker, or held after a restart',
    labelNames: ['stage'],
    registers: [registry],
    collect() {
      const q = cluster?.queueDepth() ?? { queued: 0, offered: 0, held: 0 };
      for (const [stage, n] of Object.entries(q)) this.set({ stage }, n);
    },
  });
  const stat = (read: (c: Cluster) => number) => () => (cluster ? read(cluster) : 0);
  totalCounter(registry, 'sched_tasks_submitted_total', 'Tasks accepted (stored) since start', stat((c) => c.stats.submitted));
  totalCounter(registry, 'sched_offers_total', 'Offers sent to workers', stat((c) => c.stats.offers));
  totalCounter(registry, 'sched_offers_rejected_total', 'Offers a worker refused', stat((c) => c.stats.rejected));
  totalCounter(registry, 'sched_offers_timed_out_total', 'Offers not answered within the ack timeout', stat((c) => c.stats.ackTimeouts));
  totalCounter(registry, 'sched_tasks_retried_total', 'Tasks placed again after their worker was lost', stat((c) => c.stats.retried));
  totalCounter(registry, 'sched_tasks_done_total', 'Tasks that ran to their end', stat((c) => c.stats.done));
  totalCounter(
    registry,
    'sched_manager_stalled_seconds_total',
    'Time not held against workers because the manager was stalled or its event loop saturated',
    stat((c) => c.stalledMs / 1000),
  );
  let leadership: (() => { role: string; term: bigint; managers: string[] }) | undefined;
  new Gauge({
    name: 'sched_manager_leader',
    help: '1 while this manager leads, else 0 (a follower, or a candidate that knows no leader)',
    registers: [registry],
    collect() {
      this.set(leadership?.().role === 'leader' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'sched_manager_term',
    help: "The current leader's term: the store revision at which it was elected",
    registers: [registry],
    collect() {
      this.set(Number(leadership?.().term ?? 0n));
    },
  });
  new Gauge({
    name: 'sched_managers',
    help: 'Managers registered in the store (the leader and its followers)',
    registers: [registry],
    collect() {
      this.set(leadership?.().managers.length ?? 0);
    },
  });
  new Counter({
    name: 'sched_tasks_dead_total',
    help: 'Tasks that will never run (or were stopped), by reason',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, n] of cluster?.stats.dead ?? []) this.inc({ reason }, n);
    },
  });
  return {
    registry,
    observeCommit(seconds, ops, ok) {
      commitSeconds.observe({ result: ok ? 'ok' : 'error' }, seconds);
      if (ok) commitOps.observe(ops);
    },
    attach(c) {
      cluster = c;
    },
    attachLeadership(read) {
      leadership = read;
    },
  };
}

/** Serves GET /metrics (Prometheus text format) and GET /healthz; resolves with the bound port. */
export async function serveMetrics(metrics: Metrics, host: string, port: number): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        (err: Error) => res.writeHead(500).end(`${err.message}\n`),
      );
      return;
    }
    if (req.method === 'GET' && req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  return { server, port: typeof address === 'object' && address ? address.port : port };
}
