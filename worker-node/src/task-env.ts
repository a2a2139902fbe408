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

export interface Markers extends TaskRef {
  workerId: string;
  runId: string;
}

/** One task's environment: the base, its own variables, then the markers. */
export function taskEnv(base: Record<string, string>, own: Record<string, string> | undefined, m: Markers): Record<string, string> {
  return { ...base, ...own, [WORKER_ENV]: m.workerId, [RUN_ENV]: m.runId, [TASK_ID_ENV]: m.taskId, [TASK_ATTEMPT_ENV]: String(m.attempt) };
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
