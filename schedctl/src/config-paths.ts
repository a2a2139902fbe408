// Where schedctl's config comes from, apart from config.ts (and zod) for the help text.
export const DEFAULT_CONFIG_PATH = '/etc/sched/schedctl.yaml';
export const CONFIG_ENV = 'SCHED_CONFIG';
/** The variable's older name, still read when SCHED_CONFIG is not set. */
export const OLD_CONFIG_ENV = 'SCHEDCTL_CONFIG';
/** The manager(s) to dial when --manager is not given: host:port, or several comma-separated. */
export const MANAGER_ENV = 'SCHED_MANAGER';

/** The config file the environment names, if any (an empty variable names none). */
export const configFromEnv = (env: Record<string, string | undefined>): string | undefined =>
  env[CONFIG_ENV] || env[OLD_CONFIG_ENV] || undefined;
