// Started reports wait a moment before they go out: a task that ends within it
// is reported by its Finished alone, which carries its pid and start time too.
// For short tasks that is one message fewer for the worker and the manager, and
// one store write fewer (Nomad's client batches allocation updates likewise).
// The delay must stay well below the manager's ack timeout (100 ms at least),
// since for a new start Started is also the answer to the offer.
import type { StartedEvent } from './executor.js';
import type { TaskRef } from './task-id.js';

export const STARTED_DELAY_MS = 20;

const key = (t: TaskRef): string => `${t.taskId}.${t.attempt}`;

export class DelayedStarts {
  private readonly queued = new Map<string, StartedEvent>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly send: (e: StartedEvent) => void,
    private readonly delayMs = STARTED_DELAY_MS,
  ) {}

  /** Sends e after the delay, with whatever else is queued by then. */
  add(e: StartedEvent): void {
    this.queued.set(key(e), e);
    this.timer ??= setTimeout(() => this.flush(), this.delayMs);
  }

  /** The attempt ended: its Finished says it started. */
  drop(t: TaskRef): void {
    this.queued.delete(key(t));
  }

  /** Forgets what is queued (the stream is gone: Hello will list what runs). */
  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.queued.clear();
  }

  private flush(): void {
    const due = [...this.queued.values()];
    this.clear();
    for (const e of due) this.send(e);
  }
}
