// Task users (TaskSpec.user, a worker's run_as and allowed_users): one syntax for the
// worker's config, the manager's checks and schedctl's flags.

/** A POSIX user name, as useradd takes it (a trailing $ for machine accounts). */
export const USER_NAME = /^[a-z_][a-z0-9_-]{0,31}\$?$/i;
export const USER_NAME_RULE = 'must be a user name ([A-Za-z_][A-Za-z0-9_-]*, at most 32 characters)';
/** Users a worker may list in allowed_users. */
export const MAX_ALLOWED_USERS = 256;

/** userProblem: why a user name is not one, or undefined. */
export function userProblem(name: string): string | undefined {
  return USER_NAME.test(name) ? undefined : `${USER_NAME_RULE}, got ${JSON.stringify(name.length > 40 ? `${name.slice(0, 40)}…` : name)}`;
}

/**
 * The placement core knows constraints (labels a worker must carry), so a task's user is one:
 * the manager gives each worker a label per user it allows, under a key no real label can
 * have (labels are [A-Za-z0-9._/-]), and each task with a user the matching constraint.
 */
const USER_LABEL_PREFIX = '\u0000user:';
export const userLabelKey = (user: string): string => `${USER_LABEL_PREFIX}${user}`;
export const USER_LABEL_VALUE = 'allowed';

/** The user a user label names, or undefined for an ordinary label key. */
export const userOfLabelKey = (key: string): string | undefined => (key.startsWith(USER_LABEL_PREFIX) ? key.slice(USER_LABEL_PREFIX.length) : undefined);

/** A worker's labels plus one per user its tasks may run as (its run_as and allowed_users), for placement. */
export function withUserLabels(labels: Record<string, string>, runAs: string, allowed: readonly string[]): Record<string, string> {
  if (!runAs && allowed.length === 0) return labels;
  const out = { ...labels };
  for (const user of [runAs, ...allowed]) if (user) out[userLabelKey(user)] = USER_LABEL_VALUE;
  return out;
}
