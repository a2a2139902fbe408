// schedctl's config: where the management node is and how long to wait for it.
import { existsSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError, durationIn, hostPort, loadConfig } from '../../common/config.js';
import { tlsSchema } from '../../common/tls.js';

import { CONFIG_ENV, DEFAULT_CONFIG_PATH } from './config-paths.js';

export { CONFIG_ENV, DEFAULT_CONFIG_PATH };

export const configSchema = z
  .object({
    manager: hostPort().default('127.0.0.1:7070'),
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
 * -c wins, then $SCHEDCTL_CONFIG, then /etc/sched/schedctl.yaml if it exists,
 * else the defaults. A file named explicitly (-c or the variable) must exist:
 * a typo there should fail, not silently talk to 127.0.0.1. --manager
 * overrides whatever the file says.
 */
export function resolveConfig(
  flags: ConfigFlags,
  env: Record<string, string | undefined>,
  defaultPath: string = DEFAULT_CONFIG_PATH,
): ResolvedConfig {
  const explicit = flags.config ?? (env[CONFIG_ENV] || undefined);
  const file = explicit ?? (existsSync(defaultPath) ? defaultPath : undefined);
  const config = file ? loadConfig(file, configSchema) : configSchema.parse({});
  if (flags.manager !== undefined) {
    const checked = hostPort().safeParse(flags.manager);
    if (!checked.success) throw new ConfigError(`--manager: ${checked.error.issues[0]?.message ?? 'invalid'}`);
    config.manager = checked.data;
  }
  return { ...config, source: file ?? 'defaults' };
}
