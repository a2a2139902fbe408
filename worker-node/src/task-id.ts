// Task ids and attempts as the worker names them: ids become file names
// (logs, outbox), so they must not be able to name another path.

export interface TaskRef {
  taskId: string;
  attempt: number;
}

const TASK_ID = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

/** checkTaskId returns why a task id cannot be used, or undefined when it is fine. */
export function checkTaskId(taskId: string): string | undefined {
  return TASK_ID.test(taskId) ? undefined : 'task_id: must be 1-128 of [A-Za-z0-9._-], not starting with "."';
}
