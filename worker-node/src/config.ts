// worker-node.yaml: where the managers are, where results live on disk, and
// what this node offers. Unknown keys are errors so typos do not go unnoticed.
import { resolve, join } from 'node:path';
import { z } from 'zod';
import { durationIn, hostPort, logLevel, loadConfig, memoryIn, numberIn, parseConfig } from '../../common/config.js';
import { LOG_FORMATS } from '../../common/logger.js';
import { tlsSchema } from '../../common/tls.js';
import { labelKeyProblem, labelValueProblem, MAX_LABELS } from '../../common/labels.js';
import { MAX_ALLOWED_USERS, USER_NAME, USER_NAME_RULE } from '../../common/run-user.js';
import { ENV_NAME, MAX_ENV_INHERIT } from './task-env.js';

// YAML turns `rack: 3` into a number; a label is always text, so accept scalars.
const labelValue = z
  .union([z.string(), z.number(), z.boolean()])
  .transform(String)
  .superRefine((v, ctx) => {
    const problem = labelValueProblem(v);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });
// The manager refuses a Hello with labels outside this syntax: say so at start-up instead.
const labelKey = z.string().superRefine((k, ctx) => {
  const problem = labelKeyProblem(k);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const KI = 2 ** 10;
const MI = 2 ** 20;
const TI = 2 ** 40;
/** Managers a worker may list (one leads; the others name it when dialled). */
export const MAX_MANAGERS = 16;

export const workerConfigSchema = z
  .object({
    /** One manager (host:port): the same as a one-entry managers list. */
    manager: hostPort().optional(),
    /** Managers sharing one store (high availability): dialled one at a time, the first first. */
    managers: z
      .array(hostPort())
      .min(1, 'must list at least one host:port')
      .max(MAX_MANAGERS, `at most ${MAX_MANAGERS} managers`)
      .superRefine((list, ctx) => {
        const twice = list.find((a, i) => list.indexOf(a) !== i);
        if (twice) ctx.addIssue({ code: 'custom', message: `lists ${twice} twice` });
      })
      .optional(),
    token: z.string().optional(),
    /** What operators call this worker (schedctl takes it wherever a worker id goes); default: the hostname. */
    name: z.string().regex(/^[A-Za-z0-9._-]{1,63}$/, 'must be 1-63 of [A-Za-z0-9._-]').optional(),
    /** Mutual TLS: the CA and this worker's certificate (role worker) and key; without it, plain TCP. */
    tls: tlsSchema().optional(),
    data_dir: z.string().min(1).default('./data/worker'),
    id_file: z.string().min(1).optional(),
    capacity: z
      .object({ cpu: numberIn(0.001, 4096).optional(), memory: memoryIn(MI, 1024 * TI).optional() })
      .strict()
      .optional(),
    labels: z.record(labelKey, labelValue).refine((l) => Object.keys(l).length <= MAX_LABELS - 3, `at most ${MAX_LABELS - 3} labels (hostname, os and arch are added)`).default({}),
    // Every duration and size has a range (a message naming the key and the
    // range otherwise). A zero interval would redial in a tight loop while the
    // manager is down.
    reconnect_interval: durationIn(10, 5 * MINUTE).default(1000),
    /** Redials back off exponentially from reconnect_interval up to this. */
    reconnect_max: durationIn(10, HOUR).default(30_000),
    /** SIGTERM → SIGKILL grace of a cancelled or timed-out task (0s: SIGKILL at once). */
    cancel_grace: durationIn(0, HOUR).default(10_000),
    /** On SIGTERM, how long running tasks may go on before they are cancelled. */
    shutdown_timeout: durationIn(0, DAY).default(30_000),
    /** Cap of each task's log files, stdout and stderr together. */
    log_max_size: memoryIn(KI, TI).default(64 * MI),
    /** Task log files are removed this long after they were last written (also the sweep period's cap, so not 0). */
    log_retention: durationIn(MINUTE, 365 * DAY).default(DAY),
    /** The worker's environment variables tasks get besides PATH, HOME, LANG, TZ and USER. */
    env_inherit: z
      .array(z.string().regex(ENV_NAME, 'must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)'))
      .max(MAX_ENV_INHERIT)
      .default([]),
    /** Each attempt in a cgroup of its own with its limits (auto: where the worker may make them; off: never). */
    cgroups: z.enum(['auto', 'off']).default('auto'),
    /** Added to a task's --mem for its memory limit (page cache, a shell around it). */
    memory_headroom: memoryIn(0, TI).default(0),
    /**
     * CPU: each task gets a share of the CPU in proportion to its --cpu (a cgroup weight), so an
     * idle machine is not wasted; true adds a hard quota of --cpu (Nomad's cpu_hard_limit).
     */
    cpu_hard_limit: z.boolean().default(false),
    /** The pids limit of a task that sets no --max-pids (processes and threads at once). */
    max_pids: numberIn(1, 4_194_304, { int: true }).default(4096),
    /** The user tasks run as when they name none (uid, gid and groups from the system's user database); default: the worker's own. */
    run_as: z.string().regex(USER_NAME, USER_NAME_RULE).optional(),
    /** Users a task may name with --user (besides run_as). */
    allowed_users: z.array(z.string().regex(USER_NAME, USER_NAME_RULE)).max(MAX_ALLOWED_USERS).default([]),
    log_level: logLevel().default('info'),
    /** How logs are written to stderr: text (one line for people) or json; default: text when stderr is a terminal, else json. */
    log_format: z.enum(LOG_FORMATS).optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.manager !== undefined && c.managers !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['manager'], message: 'give either manager or managers, not both' });
    } else if (c.manager === undefined && c.managers === undefined) {
      ctx.addIssue({ code: 'custom', path: ['manager'], message: 'required key is missing: give managers (a list of host:port) or manager (one host:port)' });
    }
  })
  // Paths become absolute once, so a task's cwd never changes where logs go.
  .transform(({ manager, managers, ...c }) => {
    const dataDir = resolve(c.data_dir);
    return { ...c, managers: managers ?? [manager!], data_dir: dataDir, id_file: resolve(c.id_file ?? join(dataDir, 'worker-id')) };
  });

export type WorkerConfig = z.output<typeof workerConfigSchema>;

export const loadWorkerConfig = (file: string): WorkerConfig => loadConfig(file, workerConfigSchema);
export const parseWorkerConfig = (file: string, text: string): WorkerConfig => parseConfig(file, text, workerConfigSchema);
