// schedctl's config when there is no config file at all: the defaults of
// config.ts's schema, with --manager over them. That is every command run
// without /etc/sched/schedctl.yaml, -c or $SCHED_CONFIG, and for it
// config.ts would load zod and yaml (~0.65 MB of code to read, compile and
// run at each start) only to hand back two constants.
//
// Whenever this cannot answer exactly as config.ts would (a file to read, or a
// --manager that config.ts turns into an error message), it answers undefined
// and the caller takes config.ts. test/unit/schedctl-config.test.ts checks
// that both agree.
import { existsSync } from 'node:fs';
import type { ConfigFlags, ResolvedConfig } from './config.js';
import { configFromEnv, DEFAULT_CONFIG_PATH, MANAGER_ENV } from './config-paths.js';

/** config.ts's defaults: manager and timeout (ms). */
export const DEFAULTS = { manager: '127.0.0.1:7070', timeout: 10_000 } as const;

/** The pattern of common/config.ts hostPort(): host:port, an IPv6 host in brackets. */
const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/;

/** The config without a file, or undefined when config.ts must decide (see the top of this file). */
export function configWithoutFile(
  flags: ConfigFlags,
  env: Record<string, string | undefined>,
  defaultPath: string = DEFAULT_CONFIG_PATH,
): ResolvedConfig | undefined {
  if (flags.config !== undefined || configFromEnv(env)) return undefined;
  if (existsSync(defaultPath)) return undefined;
  const manager = flags.manager ?? (env[MANAGER_ENV] || undefined);
  if (manager !== undefined && !manager.split(',').every((m) => HOST_PORT.test(m.trim()))) return undefined;
  return { manager: manager ?? DEFAULTS.manager, timeout: DEFAULTS.timeout, source: 'defaults' };
}
