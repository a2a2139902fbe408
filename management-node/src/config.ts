import { z } from 'zod';
import { durationIn, hostPort, loadConfig, logLevel, memoryIn, numberIn, parseConfig } from '../../common/config.js';
import { tlsSchema } from '../../common/tls.js';
import { LOG_FORMATS } from '../../common/logger.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const MI = 2 ** 20;

const storeSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('embedded'), path: z.string().min(1).default('./data/manager') }).strict(),
  z
    .object({
      type: z.literal('etcd'),
      endpoints: z.array(z.string().regex(/^https?:\/\/[^\s]+$/, 'expected a URL like http://127.0.0.1:2379')).min(1),
      prefix: z.string().regex(/^\/.*\/$/, 'must start and end with "/", e.g. /sched/').default('/sched/'),
      dial_timeout: durationIn(100, MINUTE).default(3 * SECOND),
    })
    .strict(),
]);

// Every duration and size has a range: a typo such as 0s or 1000h is refused
// at start-up, naming the key and the range, rather than making a tight loop
// or a timer that never fires.
export const managerConfigSchema = z
  .object({
    listen: hostPort().default('127.0.0.1:7070'),
    /**
     * Where workers and clients reach this manager (host:port): what followers tell them the
     * leader's address is. Default: the listen address with the bound port (this machine's
     * hostname when listen is 0.0.0.0 or ::).
     */
    advertise: hostPort().optional(),
    /**
     * Several managers on one etcd: the leader's lease. A leader that cannot renew it within
     * this long (crashed, frozen, cut off) is replaced; a smaller one fails over sooner.
     */
    leader_lease: durationIn(2 * SECOND, MINUTE).default(3 * SECOND),
    store: storeSchema.default({ type: 'embedded', path: './data/manager' }),
    ping_interval: durationIn(50, 5 * MINUTE).default(SECOND),
    /** Pings a worker may miss before it is marked disconnected. */
    missed_pings: numberIn(1, 100, { int: true }).default(3),
    ack_timeout: durationIn(100, 10 * MINUTE).default(5 * SECOND),
    /** How long a new stream has to send its Hello before it is closed. */
    hello_timeout: durationIn(SECOND, 5 * MINUTE).default(10 * SECOND),
    /** Concurrent gRPC streams one client connection may open. */
    max_streams_per_connection: numberIn(1, 10_000, { int: true }).default(100),
    /** How long a disconnected worker's tasks wait for it before they are lost; its workers kill them sooner (orphan timeout), so a retry never overlaps. */
    reconnect_grace: durationIn(SECOND, 7 * DAY).default(10 * SECOND),
    /**
     * After a restart or failover, at most how long recovered pending tasks wait for the workers that
     * were connected to reconnect and report (less once they all have). Never less than reconnect_grace:
     * a worker that does not come back has killed what it ran by then (its orphan timeout is shorter).
     */
    recovery_grace: durationIn(0, HOUR).default(10 * SECOND),
    /** Done and dead tasks are deleted from the store this long after they finished. */
    retention: durationIn(MINUTE, 365 * DAY).default(DAY),
    /** At most this many finished tasks are kept; the oldest go first. */
    max_finished_tasks: numberIn(0, 10_000_000, { int: true }).default(100_000),
    /** What a task that names no --cpu reserves on its worker, in cores. */
    default_task_cpu: numberIn(0.001, 1024).default(0.25),
    /** What a task that names no --mem reserves on its worker. */
    default_task_memory: memoryIn(MI, 2 ** 40).default(64 * MI),
    /** Placement of tasks that name no strategy: fill the fullest worker that fits, or the emptiest. */
    default_strategy: z.enum(['binpack', 'spread']).default('binpack'),
    join_token: z.string().optional(),
    /** Mutual TLS: the CA and this manager's certificate (role manager) and key; without it, plain TCP. */
    tls: tlsSchema().optional(),
    /** Where Prometheus scrapes GET /metrics (and GET /healthz); unset = not served. */
    metrics_listen: hostPort().optional(),
    log_level: logLevel().default('info'),
    /** How logs are written to stderr: text (one line for people) or json; default: text when stderr is a terminal, else json. */
    log_format: z.enum(LOG_FORMATS).optional(),
  })
  .strict();

export type ManagerConfig = z.output<typeof managerConfigSchema>;

export const loadManagerConfig = (file: string): ManagerConfig => loadConfig(file, managerConfigSchema);
export const parseManagerConfig = (file: string, text: string): ManagerConfig => parseConfig(file, text, managerConfigSchema);
