// Filter step of the pipeline: may this worker take this task at all?
// One small check per reason, applied in a fixed order so that a worker is
// counted once, by the first check that rejects it (explain() and tests use
// this; the scheduler's hot path answers the same questions from its indexes).
import { userOfLabelKey } from '../../../common/run-user.js';
import type { RejectReason, Resources } from './types.js';

export interface WorkerFacts {
  connected: boolean;
  draining: boolean;
  labels: Readonly<Record<string, string>>;
  capacity: Resources;
  used: Resources;
}

export interface TaskNeeds {
  resources: Resources;
  /** Sorted by key (see constraintList) so the missing label reported is stable. */
  constraints: ReadonlyArray<readonly [string, string]>;
}

/** constraintList turns k=v constraints into a key-sorted list. */
export function constraintList(constraints: Readonly<Record<string, string>>): Array<[string, string]> {
  return Object.entries(constraints).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** missingLabel returns the first constraint ("k=v") the labels do not satisfy. */
export function missingLabel(labels: Readonly<Record<string, string>>, constraints: TaskNeeds['constraints']): string | undefined {
  for (const [k, v] of constraints) {
    if (!Object.hasOwn(labels, k) || labels[k] !== v) return `${k}=${v}`;
  }
  return undefined;
}

export function fitsCpu(w: WorkerFacts, t: TaskNeeds): boolean {
  return w.capacity.millicpu - w.used.millicpu >= t.resources.millicpu;
}

export function fitsMemory(w: WorkerFacts, t: TaskNeeds): boolean {
  return w.capacity.memoryBytes - w.used.memoryBytes >= t.resources.memoryBytes;
}

/** holds: the worker could take the task if nothing else ran on it. */
export function holds(capacity: Resources, request: Resources): boolean {
  return capacity.millicpu >= request.millicpu && capacity.memoryBytes >= request.memoryBytes;
}

/**
 * firstRejection runs the filters in order: disconnected, draining, excluded,
 * missing label, insufficient cpu, insufficient memory, reserved. undefined:
 * the worker takes the task.
 */
export function firstRejection(w: WorkerFacts, t: TaskNeeds, excluded: boolean, reservedForEarlier = false): RejectReason | undefined {
  if (!w.connected) return 'disconnected';
  if (w.draining) return 'draining';
  if (excluded) return 'excluded';
  const label = missingLabel(w.labels, t.constraints);
  if (label !== undefined) {
    const user = userOfLabelKey(label.slice(0, label.lastIndexOf('=')));
    return user === undefined ? `missing label ${label}` : `user ${user} not allowed`;
  }
  if (!fitsCpu(w, t)) return 'insufficient cpu';
  if (!fitsMemory(w, t)) return 'insufficient memory';
  if (reservedForEarlier) return 'reserved for an earlier task';
  return undefined;
}
