// schedctl's config: where the management node is and how long to wait for it.
import { existsSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError, durationIn, hostPort, loadConfig } from '../../common/config.js';
import { tlsSchema } from '../../common/tls.js';

import { CONFIG_ENV, configFromEnv, DEFAULT_CONFIG_PATH, MANAGER_ENV } from './config-paths.js';

export { CONFIG_ENV, DEFAULT_CONFIG_PATH, MANAGER_ENV };

/** One manager (host:port), or several: a YAML list or "a:7070,b:7070"; kept as the comma-joined list. */
export const managersProblem = (list: string): string | undefined => {
  const parts = list.split(',').map((p) => p.trim());
  if (parts.length > 16) return 'at most 16 managers';
  const bad = parts.find((p) => !hostPort().safeParse(p).success);
  return bad === undefined ? undefined : `expected host:port (or a list of them), e.g. 127.0.0.1:7070, got ${JSON.stringify(bad)}`;
};
const managers = () =>
  z
    .union([z.string(), z.array(z.string()).min(1)])
    .transform((v) => (Array.isArray(v) ? v.join(',') : v))
    .superRefine((v, ctx) => {
      const problem = managersProblem(v);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    });

export const configSchema = z
  .object({
    manager: managers().default('127.0.0.1:7070'),
    // Deadline of each unary RPC; 0 would fail every call, an hour is surely a typo.
    timeout: durationIn(100, 3_600_000).default(10_000),
    // Mutual TLS: the CA and an admin certificate and key; without it, plain TCP.
    tls: tlsSchema().optional(),
  })
  .strict();

export type SchedctlConfig = z.output<typeof configSchema>;

export interface ResolvedConfig extends SchedctlConfig {
  /** The file read, or "defaults" when there was none; shown by -v. */
  source: string;
}

export interface ConfigFlags {
  config?: string | undefined;
  manager?: string | undefined;
}

/**
 * -c wins, then $SCHED_CONFIG (or its older name $SCHEDCTL_CONFIG), then /etc/sched/schedctl.yaml if it exists,
 * else the defaults. A file named explicitly (-c or the variable) must exist:
 * a typo there should fail, not silently talk to 127.0.0.1. --manager, else
 * $SCHED_MANAGER, overrides whatever the file says (one host:port, or several
 * comma-separated: the managers of one cluster, the leader found among them).
 */
export function resolveConfig(
  flags: ConfigFlags,
  env: Record<string, string | undefined>,
  defaultPath: string = DEFAULT_CONFIG_PATH,
): ResolvedConfig {
  const explicit = flags.config ?? configFromEnv(env);
  const file = explicit ?? (existsSync(defaultPath) ? defaultPath : undefined);
  const config = file ? loadConfig(file, configSchema) : configSchema.parse({});
  const manager = flags.manager ?? (env[MANAGER_ENV] || undefined);
  if (manager !== undefined) {
    const problem = managersProblem(manager);
    if (problem) throw new ConfigError(`${flags.manager !== undefined ? '--manager' : `$${MANAGER_ENV}`}: ${problem}`);
    config.manager = manager;
  }
  return { ...config, source: file ?? 'defaults' };
}
