// The persistence journal: every task and worker change reaches the store here,
// through the group committer (store/group-commit.ts), and nobody hears of a
// change (an RPC answer, a watcher, a FinishedAck) before it is stored: the read
// barrier (committed) waits for a task's writes in flight, and watchers are told
// after each commit. Changes nobody waits for (offered, scheduled, started) are
// written behind, on the next tick or with the task's next write, so a short task
// costs two commits. Failed writes are retried on the tick.
import { clone } from '@bufbuild/protobuf';
import { TaskSchema, type Task, type Worker } from '../../proto/gen/schedapi/v1/types_pb.js';
import { NotFoundError, StoreRefusedError, StoreUnavailableError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { GroupCommitter } from './store/group-commit.js';
import { encodeTask, encodeWorker, taskKey, workerKey } from './store/records.js';

export type TaskListener = (task: Task) => void;

/** A task written again and again while a client waits for it to settle: answer after this many rounds. */
const MAX_COMMIT_WAITS = 8;

export class Journal {
  private readonly listeners = new Map<string, Set<TaskListener>>();
  /** Records whose last write failed; rewritten on the next tick. */
  private readonly dirtyTasks = new Set<string>();
  private readonly dirtyWorkers = new Set<string>();
  private readonly dirtyDeletes = new Set<string>();
  /** Task writes not yet answered by the store (or deferred), and who waits for them to land. */
  private readonly inflight = new Map<string, { writes: number; waiters: Array<() => void> }>();
  /** Tasks with a change to write on the next tick (see writeLater). */
  private readonly deferred = new Set<string>();

  /**
   * tasks and workers are the records as they are now (a write of a record since replaced or
   * removed is not retried); stored is told of each task write that landed.
   */
  constructor(
    private readonly committer: GroupCommitter,
    private readonly tasks: ReadonlyMap<string, Task>,
    private readonly workers: ReadonlyMap<string, Worker>,
    private readonly stored: (task: Task) => void,
    private readonly log: Logger,
  ) {}

  /** watch calls listener with each committed change of the task; returns the unsubscribe function. */
  watch(id: string, listener: TaskListener): () => void {
    let set = this.listeners.get(id);
    if (!set) this.listeners.set(id, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(id);
    };
  }

  /** unwatch drops the watchers of a task that is removed. */
  unwatch(id: string): void {
    this.listeners.delete(id);
  }

  /**
   * committed resolves with the task once none of its writes is in flight, so what a client is
   * told is what the store holds; UNAVAILABLE while its last write failed.
   */
  async committed(id: string): Promise<Task> {
    for (let round = 0; round < MAX_COMMIT_WAITS; round++) {
      const flight = this.inflight.get(id);
      if (!flight) break;
      await new Promise<void>((resolve) => flight.waiters.push(resolve));
    }
    const task = this.tasks.get(id);
    if (!task) throw new NotFoundError('task', id);
    if (this.dirtyTasks.has(id)) throw new StoreUnavailableError(`the latest change of task ${id} is not stored yet (the manager keeps retrying)`);
    return task;
  }

  /**
   * writeLater marks a change nobody waits for (offered, scheduled, started) to be written on
   * the next tick, or with the next immediate write of the task, whichever comes first. A short
   * task then costs two commits (pending, done) instead of four. Readers still see only what is
   * stored: committed() waits for the deferred write too.
   */
  writeLater(task: Task): void {
    if (this.deferred.has(task.id)) return;
    this.deferred.add(task.id);
    this.flight(task.id).writes++;
  }

  /** writeTask stores the task as it is now; settles when the store has answered. */
  writeTask(task: Task): Promise<void> {
    const listeners = this.listeners.get(task.id);
    const snapshot = listeners ? clone(TaskSchema, task) : undefined;
    // This write carries a deferred change too, if one is waiting.
    const writes = this.deferred.delete(task.id) ? 1 : 0;
    this.flight(task.id).writes++;
    const landed = (): void => this.landed(task.id, 1 + writes);
    return this.committer.write(taskKey(task.id), encodeTask(task)).then(
      () => {
        if (snapshot) for (const l of this.listeners.get(task.id) ?? []) l(snapshot);
        this.stored(task);
        landed();
      },
      (err: unknown) => {
        if (this.tasks.get(task.id) === task) {
          if (err instanceof StoreRefusedError) this.refused(task, err);
          else this.dirtyTasks.add(task.id);
        }
        landed();
        throw err;
      },
    );
  }

  writeWorker(worker: Worker): Promise<void> {
    return this.committer.write(workerKey(worker.id), encodeWorker(worker)).then(
      () => undefined,
      (err: unknown) => {
        this.dirtyWorkers.add(worker.id);
        throw err;
      },
    );
  }

  /** delete removes a record from the store, retried on the tick until it lands. */
  delete(key: string): void {
    this.committer.write(key, null).catch(() => this.dirtyDeletes.add(key));
  }

  /** remove deletes a record and settles when the store has answered; a failed delete is retried on the tick. */
  async remove(key: string): Promise<void> {
    await this.committer.write(key, null).catch((err: unknown) => {
      this.dirtyDeletes.add(key);
      throw err;
    });
  }

  /** discard forgets the failed write of a task that is deleted instead. */
  discard(id: string): void {
    this.dirtyTasks.delete(id);
  }

  /** flushDeferred writes the changes writeLater held back. */
  flushDeferred(): void {
    for (const id of [...this.deferred]) {
      const task = this.tasks.get(id);
      if (task) {
        void this.writeTask(task).catch(() => undefined);
        continue;
      }
      // Gone meanwhile (withdrawn, removed): nothing to write, nobody to keep waiting.
      this.deferred.delete(id);
      this.landed(id, 1);
    }
  }

  /** retryTasks (on the tick) writes the deferred task changes and retries failed task writes and deletes. */
  retryTasks(): void {
    this.flushDeferred();
    for (const id of [...this.dirtyTasks]) {
      const t = this.tasks.get(id);
      this.dirtyTasks.delete(id);
      if (t) void this.writeTask(t).catch(() => undefined);
    }
    for (const key of [...this.dirtyDeletes]) {
      this.dirtyDeletes.delete(key);
      this.delete(key);
    }
  }

  /** retryWorkers (on the tick) retries failed worker writes. */
  retryWorkers(): void {
    for (const id of [...this.dirtyWorkers]) {
      const w = this.workers.get(id);
      this.dirtyWorkers.delete(id);
      if (w) void this.writeWorker(w).catch(() => undefined);
    }
  }

  private flight(id: string): { writes: number; waiters: Array<() => void> } {
    let flight = this.inflight.get(id);
    if (!flight) this.inflight.set(id, (flight = { writes: 0, waiters: [] }));
    return flight;
  }

  private landed(id: string, writes: number): void {
    const flight = this.inflight.get(id);
    if (!flight) return;
    flight.writes -= writes;
    if (flight.writes > 0) return;
    this.inflight.delete(id);
    for (const wake of flight.waiters) wake();
  }

  /**
   * refused handles a record the store will never take: rewriting it every tick would loop
   * forever. Cut to what must be kept (its state, no output, a short error) and written once more.
   */
  private refused(task: Task, err: StoreRefusedError): void {
    if (task.error.startsWith('store refused')) {
      this.log.error({ task: task.id, err: err.message }, 'the store refused a task record even without its output: its last change is not stored');
      return;
    }
    this.log.error({ task: task.id, err: err.message }, 'the store refused a task record: storing it without its output');
    task.stdoutTail = new Uint8Array(0);
    task.stderrTail = new Uint8Array(0);
    task.error = `${err.message.slice(0, 200)}; output dropped`;
    void this.writeTask(task).catch(() => undefined);
  }
}
