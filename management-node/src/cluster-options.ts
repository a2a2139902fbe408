// What a Cluster (cluster.ts) is made with: main.ts builds it from the manager's config,
// the tests from what they exercise.
import type { EventLogOptions } from './events.js';
import type { Resources, Strategy } from './scheduler/scheduler.js';

export interface ClusterOptions {
  pingIntervalMs: number;
  missedPings: number;
  ackTimeoutMs: number;
  recoveryGraceMs: number;
  /** How long the tasks of a disconnected worker wait for it to come back before they are lost. */
  reconnectGraceMs?: number;
  /** What a task that names no cpu or memory reserves on its worker. */
  defaultTaskResources?: Resources;
  /** Placement strategy of tasks that name none. */
  defaultStrategy?: Strategy;
  /** Done and dead tasks are deleted this long after they finished... */
  retentionMs?: number;
  /** ...or sooner, oldest first, while more than this many are kept. */
  maxFinishedTasks?: number;
  joinToken?: string | undefined;
  now?: () => number;
  /**
   * Most time the deadline clock advances between two readings (see fair-clock.ts): a longer
   * gap is the manager's own stall, not held against workers. Unlimited when unset.
   */
  maxClockStepMs?: number;
  /**
   * False while this manager may not act (HA: it is not sure it still leads): nothing is
   * offered and no deadline is judged. Always true when unset (a single manager).
   */
  mayAct?: () => boolean;
  /** Bounds of the WatchEvents history (events.ts). */
  events?: EventLogOptions;
}

export const DEFAULT_RECONNECT_GRACE_MS = 10_000;
