// Where schedctl's config comes from, apart from config.ts (and zod) for the help text.
export const DEFAULT_CONFIG_PATH = '/etc/sched/schedctl.yaml';
export const CONFIG_ENV = 'SCHEDCTL_CONFIG';
/** The manager(s) to dial when --manager is not given: host:port, or several comma-separated. */
export const MANAGER_ENV = 'SCHED_MANAGER';
