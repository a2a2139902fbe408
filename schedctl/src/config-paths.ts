// Where schedctl's config comes from, apart from config.ts (and zod) for the help text.
export const DEFAULT_CONFIG_PATH = '/etc/sched/schedctl.yaml';
export const CONFIG_ENV = 'SCHEDCTL_CONFIG';
