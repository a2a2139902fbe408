// The environment of a task process: a few basics from the worker's own (not
// all of it: the worker's secrets and settings are not the task's business),
// what env_inherit adds, the task's own env, and the SCHED_* markers last, so
// a task cannot hide from the reaper (reaper.ts) by overriding them.
import { checkTaskId, type TaskRef } from './task-id.js';

/** Every task process carries this variable, so a restarted worker can find what a crashed one left running. */
export const WORKER_ENV = 'SCHED_WORKER_ID';
/** Which run (process) of the worker started it: its watchdog kills only that run's tasks, never a restarted worker's. */
export const RUN_ENV = 'SCHED_WORKER_RUN';
/** The attempt a task process belongs to, so a restarted worker can report the ones it had to kill. */
export const TASK_ID_ENV = 'SCHED_TASK_ID';
export const TASK_ATTEMPT_ENV = 'SCHED_TASK_ATTEMPT';
/** For the task itself: its attempt (the same as SCHED_TASK_ATTEMPT, under the name the docs give), and its place in its group. */
export const ATTEMPT_ENV = 'SCHED_ATTEMPT';
export const GROUP_ID_ENV = 'SCHED_GROUP_ID';
export const TASK_INDEX_ENV = 'SCHED_TASK_INDEX';
export const TASK_COUNT_ENV = 'SCHED_TASK_COUNT';

/** Passed on from the worker's environment to every task when set there. */
export const BASE_ENV_NAMES: readonly string[] = ['PATH', 'HOME', 'LANG', 'TZ', 'USER'];
/** A task's PATH when the worker has none. */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** What env_inherit may name, and how many. */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const MAX_ENV_INHERIT = 256;

/** The part of every task's environment taken from the worker's (`from`): the basics and the `inherit` names. */
export function baseTaskEnv(from: NodeJS.ProcessEnv, inherit: readonly string[] = []): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of [...BASE_ENV_NAMES, ...inherit]) {
    const value = from[name];
    if (value !== undefined) env[name] = value;
  }
  env.PATH ??= DEFAULT_PATH;
  return env;
}

/** A task's group as StartTask names it (group_id, group_index, group_size): empty id and 0/0 outside a group. */
export interface TaskGroup {
  id: string;
  index: number;
  size: number;
}

const GROUP_ID = /^[A-Za-z0-9_-][A-Za-z0-9._:-]{0,127}$/;

/**
 * checkGroup returns why a StartTask's group cannot be used, or undefined when it is fine. A group
 * without a size (a schedule's) gets SCHED_GROUP_ID alone; a size needs an id and an index below it.
 */
export function checkGroup(g: TaskGroup): string | undefined {
  if (g.id !== '' && !GROUP_ID.test(g.id)) return 'group_id: must be 1-128 of [A-Za-z0-9._:-], not starting with "." or ":"';
  if (g.size === 0 && g.index !== 0) return 'group_index: set without group_size';
  if (g.size > 0 && g.id === '') return 'group_size: set without group_id';
  if (g.size > 0 && g.index >= g.size) return `group_index: ${g.index} is not below group_size ${g.size}`;
  return undefined;
}

export interface Markers extends TaskRef {
  workerId: string;
  runId: string;
  group?: TaskGroup | undefined;
}

/** One task's environment: the base, its own variables, then the markers and what the task is told of itself. */
export function taskEnv(base: Record<string, string>, own: Record<string, string> | undefined, m: Markers): Record<string, string> {
  const attempt = String(m.attempt);
  const env: Record<string, string> = { ...base, ...own, [WORKER_ENV]: m.workerId, [RUN_ENV]: m.runId, [TASK_ID_ENV]: m.taskId, [TASK_ATTEMPT_ENV]: attempt, [ATTEMPT_ENV]: attempt };
  const g = m.group;
  if (g !== undefined && g.id !== '') env[GROUP_ID_ENV] = g.id;
  if (g !== undefined && g.size > 0) {
    env[TASK_INDEX_ENV] = String(g.index);
    env[TASK_COUNT_ENV] = String(g.size);
  }
  return env;
}

/** The markers found in a process's environment ("K=V" entries); task only when it names a valid attempt. */
export function readMarkers(env: readonly string[]): { workerId?: string; runId?: string; task?: TaskRef } {
  const value = (name: string): string | undefined => {
    const kv = env.find((e) => e.startsWith(`${name}=`));
    return kv === undefined ? undefined : kv.slice(name.length + 1);
  };
  const workerId = value(WORKER_ENV);
  const runId = value(RUN_ENV);
  const taskId = value(TASK_ID_ENV);
  const attempt = Number(value(TASK_ATTEMPT_ENV) ?? NaN);
  // The id becomes a file name: it must be one the executor would have accepted.
  const valid = taskId !== undefined && !checkTaskId(taskId) && Number.isInteger(attempt) && attempt >= 0 && attempt <= 0xffffffff;
  return {
    ...(workerId !== undefined ? { workerId } : {}),
    ...(runId !== undefined ? { runId } : {}),
    ...(valid ? { task: { taskId, attempt } } : {}),
  };
}
