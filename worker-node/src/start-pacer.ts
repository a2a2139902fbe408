// New task processes start at most one per turn of the event loop. Node's
// spawn() blocks until the child has exec'd, which on a busy machine (and with
// cgroup v1 migrations slowing every fork on it) takes up to hundreds of
// milliseconds: a burst of offers spawned back to back stalled a worker for
// seconds, long enough for the manager to miss its pongs and give it up while
// its tasks ran, and then place them again. Paced, pings, results and cancels
// get through between two spawns. A start that waits here is accepted (the
// session says so at once) and counts as running: Hello lists it, it reserves
// its resources, a cancel or the orphan timeout takes it out before it runs.
import os from 'node:os';
import type { FinishedEvent } from './executor.js';
import type { TaskRef } from './task-id.js';

export interface WaitingStart extends TaskRef {
  millicpu: number;
  memoryBytes: number;
  /** Starts the process (Executor.start). */
  run: () => void;
}

export class StartPacer {
  private readonly waiting = new Map<string, WaitingStart>();
  private ranThisTurn = false;
  private drainer: NodeJS.Immediate | undefined;

  get size(): number {
    return this.waiting.size;
  }

  /** Runs the start now if it is the first of this turn and none waits; else queues it. True when queued. */
  offer(start: WaitingStart): boolean {
    if (!this.ranThisTurn && this.waiting.size === 0) {
      this.ran();
      start.run();
      return false;
    }
    this.waiting.set(start.taskId, start);
    this.schedule();
    return true;
  }

  /** The waiting start of a task, if any. */
  find(taskId: string): WaitingStart | undefined {
    return this.waiting.get(taskId);
  }

  /** Takes a waiting start out before it runs; undefined when that attempt does not wait. */
  take(taskId: string, attempt: number): WaitingStart | undefined {
    const start = this.waiting.get(taskId);
    if (!start || start.attempt !== attempt) return undefined;
    this.waiting.delete(taskId);
    return start;
  }

  /** Takes every waiting start out (they will not run). */
  clear(): WaitingStart[] {
    const all = [...this.waiting.values()];
    this.waiting.clear();
    if (this.drainer) clearImmediate(this.drainer);
    this.drainer = undefined;
    return all;
  }

  refs(): TaskRef[] {
    return [...this.waiting.values()].map(({ taskId, attempt }) => ({ taskId, attempt }));
  }

  /** What the waiting starts reserve, added to `base` (what the running ones do). */
  reserved(base = { millicpu: 0, memoryBytes: 0 }): { millicpu: number; memoryBytes: number } {
    let { millicpu, memoryBytes } = base;
    for (const s of this.waiting.values()) {
      millicpu += s.millicpu;
      memoryBytes += s.memoryBytes;
    }
    return { millicpu, memoryBytes };
  }

  /** This turn has spawned, until the event loop has gone round once. */
  private ran(): void {
    if (this.ranThisTurn) return;
    this.ranThisTurn = true;
    setImmediate(() => {
      this.ranThisTurn = false;
    });
  }

  private schedule(): void {
    if (this.drainer || this.waiting.size === 0) return;
    this.drainer = setImmediate(() => {
      this.drainer = undefined;
      const next = this.waiting.values().next();
      if (next.done) return;
      this.waiting.delete(next.value.taskId);
      // The next one is scheduled first: a start that throws must not strand the rest.
      this.schedule();
      this.ran();
      next.value.run();
    });
  }
}

/** The result of a start taken out before it ran: as a process killed at once by `signal`, pid 0. */
export function notStarted(start: TaskRef, signal: 'SIGTERM' | 'SIGKILL', error: string): FinishedEvent {
  const now = Date.now();
  const empty = new Uint8Array(0);
  return { taskId: start.taskId, attempt: start.attempt, pid: 0, exitCode: 128 + os.constants.signals[signal], signal, error, startedUnixMs: now, finishedUnixMs: now, stdoutTail: empty, stderrTail: empty };
}
