import { z } from 'zod';
import { duration, hostPort, loadConfig, logLevel, memory } from '../../common/config.js';
import { tlsSchema } from '../../common/tls.js';

const storeSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('embedded'), path: z.string().min(1).default('./data/manager') }).strict(),
  z
    .object({
      type: z.literal('etcd'),
      endpoints: z.array(z.string().regex(/^https?:\/\/[^\s]+$/, 'expected a URL like http://127.0.0.1:2379')).min(1),
      prefix: z.string().regex(/^\/.*\/$/, 'must start and end with "/", e.g. /sched/').default('/sched/'),
      dial_timeout: duration().default(3000),
    })
    .strict(),
]);

export const managerConfigSchema = z
  .object({
    listen: hostPort().default('127.0.0.1:7070'),
    store: storeSchema.default({ type: 'embedded', path: './data/manager' }),
    ping_interval: duration().refine((v) => v >= 50, 'must be at least 50ms').default(1000),
    /** Pings a worker may miss before it is marked disconnected. */
    missed_pings: z.number().int().min(1).default(3),
    ack_timeout: duration().refine((v) => v >= 50, 'must be at least 50ms').default(5000),
    /** How long a disconnected worker's scheduled tasks wait for it before they are lost (dead, reason worker-lost). */
    reconnect_grace: duration().default(10_000),
    /** After a restart, at most how long recovered pending tasks wait for the workers that were connected to reconnect and report (less once they all have). */
    recovery_grace: duration().default(10_000),
    /** Done and dead tasks are deleted from the store this long after they finished. */
    retention: duration().default(24 * 3600_000),
    /** At most this many finished tasks are kept; the oldest go first. */
    max_finished_tasks: z.number().int().min(0).default(100_000),
    /** What a task that names no --cpu reserves on its worker, in cores. */
    default_task_cpu: z.number().positive().default(0.25),
    /** What a task that names no --mem reserves on its worker. */
    default_task_memory: memory().default(64 * 1024 * 1024),
    /** Placement of tasks that name no strategy: fill the fullest worker that fits, or the emptiest. */
    default_strategy: z.enum(['binpack', 'spread']).default('binpack'),
    join_token: z.string().optional(),
    /** Mutual TLS: the CA and this manager's certificate (role manager) and key; without it, plain TCP. */
    tls: tlsSchema().optional(),
    /** Where Prometheus scrapes GET /metrics (and GET /healthz); unset = not served. */
    metrics_listen: hostPort().optional(),
    log_level: logLevel().default('info'),
  })
  .strict();

export type ManagerConfig = z.output<typeof managerConfigSchema>;

export const loadManagerConfig = (file: string): ManagerConfig => loadConfig(file, managerConfigSchema);
