// worker-node.yaml: where the manager is, where results live on disk, and
// what this node offers. Unknown keys are errors so typos do not go unnoticed.
import { resolve, join } from 'node:path';
import { z } from 'zod';
import { duration, hostPort, logLevel, loadConfig, memory, parseConfig } from '../../common/config.js';
import { tlsSchema } from '../../common/tls.js';

// YAML turns `rack: 3` into a number; a label is always text, so accept scalars.
const labelValue = z.union([z.string(), z.number(), z.boolean()]).transform(String);

export const workerConfigSchema = z
  .object({
    manager: hostPort(),
    token: z.string().optional(),
    /** Mutual TLS: the CA and this worker's certificate (role worker) and key; without it, plain TCP. */
    tls: tlsSchema().optional(),
    data_dir: z.string().min(1).default('./data/worker'),
    id_file: z.string().min(1).optional(),
    capacity: z
      .object({ cpu: z.number().positive().optional(), memory: memory().optional() })
      .strict()
      .optional(),
    labels: z.record(z.string().min(1), labelValue).default({}),
    // A zero interval would redial in a tight loop while the manager is down.
    reconnect_interval: duration().pipe(z.number().min(10, 'must be at least 10ms')).default(1000),
    /** Redials back off exponentially from reconnect_interval up to this. */
    reconnect_max: duration().default(30_000),
    /** SIGTERM → SIGKILL grace of a cancelled or timed-out task. */
    cancel_grace: duration().default(10_000),
    /** On SIGTERM, how long running tasks may go on before they are cancelled. */
    shutdown_timeout: duration().default(30_000),
    /** Cap of each task's log files, stdout and stderr together. */
    log_max_size: memory().default(64 * 1024 * 1024),
    /** Task log files are removed this long after they were last written. */
    log_retention: duration().default(24 * 3600_000),
    log_level: logLevel().default('info'),
  })
  .strict()
  // Paths become absolute once, so a task's cwd never changes where logs go.
  .transform((c) => {
    const dataDir = resolve(c.data_dir);
    return { ...c, data_dir: dataDir, id_file: resolve(c.id_file ?? join(dataDir, 'worker-id')) };
  });

export type WorkerConfig = z.output<typeof workerConfigSchema>;

export const loadWorkerConfig = (file: string): WorkerConfig => loadConfig(file, workerConfigSchema);
export const parseWorkerConfig = (file: string, text: string): WorkerConfig => parseConfig(file, text, workerConfigSchema);
