// What commander needs to parse the commands' flags: the parsers of flag
// values and the lists of choices. Loaded at every start (commands/registry.ts),
// so it imports nothing heavy: no gRPC, protobuf, zod, yaml or x509.
import { userProblem } from '../../common/run-user.js';
import { InvalidArgumentError } from 'commander';
import { MAX_UINT32_MS, parseDurationIn, type DurationRange } from '../../common/duration.js';
import { parseMemorySize, parseMillicpu } from '../../common/size.js';

/** The CLI's names for task states, as the operator types them after --state. */
export const TASK_STATE_NAMES = ['pending', 'scheduled', 'done', 'dead'] as const;
export type TaskStateName = (typeof TASK_STATE_NAMES)[number];

/** What tasks ls --state takes: the states, and running for scheduled (a worker accepted it). */
export const TASK_STATE_CHOICES = ['pending', 'scheduled', 'running', 'done', 'dead'] as const;
export type TaskStateChoice = (typeof TASK_STATE_CHOICES)[number];

/** How an ended task ended (TaskOutcome), as tasks ls --outcome takes and tables show it. */
export const OUTCOME_NAMES = ['succeeded', 'failed', 'timed-out', 'cancelled', 'lost'] as const;
export type OutcomeName = (typeof OUTCOME_NAMES)[number];

/** Exit code of `tasks run --wait` when a task will never run (as docker run uses 125 for its own failures). */
export const EXIT_TASK_DEAD = 125;

/** RunTask patience when the manager does not answer: retries go on this long (or the configured timeout, if longer). */
export const RUN_PATIENCE_MS = 30_000;

const UINT32_MAX = 2 ** 32 - 1;
const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/**
 * Collects repeated KEY=VALUE flags (--env, --label); commander reports the
 * throw as a usage error naming the flag.
 */
export function parseKeyValue(value: string, previous: Record<string, string> | undefined): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError('expected KEY=VALUE');
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

/** --env KEY=VALUE (repeatable). */
export const parseEnvPair = parseKeyValue;

/** --cpu: cores ("0.5", "2") or millicpu ("500m"), as millicpu. */
export function parseCpu(value: string): number {
  try {
    return parseMillicpu(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/** --mem: a whole number with a unit ("256Mi", "1Gi", "512M", "1000B"), as bytes. */
export function parseMem(value: string): number {
  try {
    return parseMemorySize(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/** A whole-number flag value within [min, max]; `signed` lets it carry a + or - sign. */
export function wholeNumber(value: string, min: number, max: number, expected: string, signed = true): number {
  const n = (signed ? /^[+-]?\d+$/ : /^\d+$/).test(value.trim()) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected ${expected}`);
  return n;
}

/** --priority: a signed 32-bit whole number; higher runs first. */
export const parsePriority = (value: string): number =>
  wholeNumber(value, INT32_MIN, INT32_MAX, `a whole number from ${INT32_MIN} to ${INT32_MAX}`);

/** --retries: how many times a task is placed again after its worker is lost (spec.retries is a uint32). */
export const parseRetries = (value: string): number => wholeNumber(value, 0, UINT32_MAX, `a whole number from 0 to ${UINT32_MAX}`);

/** --user: a user name the worker's allowed_users lists. */
export function parseUser(value: string): string {
  const problem = userProblem(value);
  if (problem) throw new InvalidArgumentError(problem);
  return value;
}

/** --max-pids: the task's processes and threads at once, 1 to Linux's highest pid_max. */
export const parseMaxPids = (value: string): number => wholeNumber(value, 1, 4_194_304, 'a whole number from 1 to 4194304');

/** At most this many tasks per RunTask: the management node refuses a larger count (cluster.ts MAX_COUNT). */
export const MAX_COUNT = 10_000;

/** --count: how many copies to run, 1 to MAX_COUNT. */
export const parseCount = (value: string): number => wholeNumber(value, 1, MAX_COUNT, `a whole number from 1 to ${MAX_COUNT}`);

/** A duration flag ("30s", "5m") in milliseconds within range; commander reports the throw naming the flag. */
export function parseDurationFlag(value: string, range: DurationRange): number {
  try {
    return parseDurationIn(value, range);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/**
 * --schedule-timeout / --timeout: a duration in milliseconds, 0 meaning no
 * limit, at most what the spec's uint32 *_ms fields hold (about 49.7 days).
 */
export const parseTimeLimit = (value: string): number => parseDurationFlag(value, { min: 0, max: MAX_UINT32_MS });

/** What RunTaskRequest.idempotency_key accepts. */
export const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{1,128}$/;

/** --idempotency-key: 1-128 of [A-Za-z0-9._:-]; commander reports the throw as a usage error naming the flag. */
export function parseIdempotencyKey(value: string): string {
  if (!IDEMPOTENCY_KEY.test(value)) throw new InvalidArgumentError('expected 1-128 characters of A-Z a-z 0-9 . _ : -');
  return value;
}

/**
 * --grace: SIGTERM → SIGKILL, at most what grace_ms (a uint32) holds, about
 * 49.7 days. Not 0: grace_ms 0 means "the worker's cancel_grace", not "kill at once".
 */
export const parseGrace = (value: string): number => parseDurationFlag(value, { min: 1, max: MAX_UINT32_MS });

/** workers drain --deadline: at least 1s (0 would cancel at once), at most what deadline_ms (a uint32) holds. */
export const parseDrainDeadline = (value: string): number => parseDurationFlag(value, { min: 1000, max: MAX_UINT32_MS });

/** --tail: a number of lines, 0 or more. */
export const parseTail = (value: string): number => wholeNumber(value, 0, 2 ** 32 - 1, 'a whole number of lines, 0 or more', false);

/** --limit: list_tasks' limit is a uint32; 0 means all. */
export const parseLimit = (value: string): number => wholeNumber(value, 0, 2 ** 32 - 1, 'a whole number (0 means all)', false);

/** --days: a whole number of days, at least 1. */
export const parseDays = (value: string): number => wholeNumber(value, 1, 36_500, 'a whole number of days from 1 to 36500', false);

/** Collects a repeatable flag's values (--host). */
export const collect = (value: string, previous: string[] = []): string[] => [...previous, value];
