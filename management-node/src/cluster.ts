// The cluster: the manager's working copy of every task and worker, and the one
// object main.ts, the gRPC services (server/) and the tests talk to. A thin
// facade: each behaviour lives in a part with one job, and this file wires them
// and keeps the order of the tick.
//
//   intake.ts          RunTask: tasks stored before they are queued; idempotency keys
//   dispatch.ts        the queue, the placement core (scheduler/) and the offers it sends
//   offer-ledger.ts    offers awaiting an answer: ack deadlines, withdrawals
//   attempts.ts        what workers report about attempts; cancel; lost workers
//   task-lifecycle.ts  the task state machine and the at-most-one-live-attempt rule (pure)
//   worker-registry.ts workers, their streams, pings, reconnect grace, certificates, load
//   recovery.ts        the hold on recovered tasks after a restart
//   journal.ts         every write to the store, write-behind, the read barrier, watchers
//   retention.ts       deleting old finished tasks and long-gone workers
//   log-relay.ts       `tasks logs`, relayed from the workers' streams
//   schedules/         cron schedules: their records, and the tasks they submit from the tick
//
// The read side (getTask, committed, watch, views, counts) only reads; state
// changes come from schedctl (submit, cancel, drain), the workers' streams and
// tick() (deadlines, liveness, recovery, retention, placement).
import { TaskState, type Task, type TaskSpec, type Worker } from '../../proto/gen/schedapi/v1/types_pb.js';
import type { Finished, Hello, LogChunk, Pong, TaskAttempt } from '../../proto/gen/schedapi/v1/worker_pb.js';
import { FailedPreconditionError, NotFoundError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import { Attempts } from './attempts.js';
import { DEFAULT_RECONNECT_GRACE_MS, type ClusterOptions } from './cluster-options.js';
import { resolveDependencies } from './dependencies.js';
import { Dispatch } from './dispatch.js';
import { EventLog } from './events.js';
import { createFairClock, type FairClock } from './fair-clock.js';
import { checkNotBefore, Gates } from './gates.js';
import { IdResolver } from './id-resolver.js';
import { Intake, type TaskOrigin } from './intake.js';
import { Journal, type TaskListener } from './journal.js';
import { LogRelay, type LogSubscriber } from './log-relay.js';
import type { ClusterStats } from './metrics.js';
import { OfferLedger } from './offer-ledger.js';
import { Recovery } from './recovery.js';
import { Retention } from './retention.js';
import { Schedules } from './schedules/schedules.js';
import type { GroupCommitter } from './store/group-commit.js';
import { workerKey } from './store/records.js';
import { createScheduler } from './scheduler/scheduler.js';
import { Submissions } from './submissions.js';
import { isTerminal } from './task-lifecycle.js';
import { DEFAULT_TASK_RESOURCES } from './task-rules.js';
import { setGroupMaxParallel, TaskEdits } from './task-edits.js';
import { TaskTable } from './task-table.js';
import { Drains } from './worker-drain.js';
import { WorkerRegistry, type WorkerLink } from './worker-registry.js';

export type { WorkerLink, WorkerMessage } from './worker-registry.js';
export type { ClusterOptions } from './cluster-options.js';


export class Cluster {
  readonly stats: ClusterStats = { submitted: 0, offers: 0, rejected: 0, ackTimeouts: 0, retried: 0, done: 0, dead: new Map() };
  readonly tasks = new TaskTable();
  readonly workers = new Map<string, Worker>();
  /** Task, group and worker references in requests: ids, prefixes, short ids, names. */
  readonly ids = new IdResolver(this.tasks, this.workers);
  /** Idempotency keys of RunTask requests, kept as long as their tasks. */
  private readonly submissions = new Submissions();
  private readonly now: () => number;
  /** The clock of deadlines that others must meet (acks, pongs, grace); see fair-clock.ts. */
  private readonly clock: FairClock;
  private readonly reconnectGraceMs: number;
  private readonly journal: Journal;
  private readonly registry: WorkerRegistry;
  private readonly offers: OfferLedger;
  private readonly recovery: Recovery;
  private readonly dispatch: Dispatch;
  private readonly intake: Intake;
  private readonly attempts: Attempts;
  private readonly retention: Retention;
  private readonly drains: Drains;
  /** Open `tasks logs` reads, relayed from the workers' streams. */
  private readonly logs: LogRelay;
  /** Every stored change, for WatchEvents, from when this manager began to lead. */
  readonly events: EventLog;
  /** What keeps pending tasks from placement: held, --at, dependencies (gates.ts). */
  readonly gates: Gates;
  /** Operators' changes to pending tasks: hold, release, update (task-edits.ts). */
  readonly edits: TaskEdits;
  /** Cron schedules; they fire from tick(). */
  readonly schedules: Schedules;

  constructor(
    committer: GroupCommitter,
    private readonly opts: ClusterOptions,
    log: Logger,
  ) {
    const now = (this.now = opts.now ?? Date.now);
    this.events = new EventLog(committer, log, { now, ...opts.events });
    const clock = (this.clock = createFairClock(now, opts.maxClockStepMs));
    this.reconnectGraceMs = opts.reconnectGraceMs ?? DEFAULT_RECONNECT_GRACE_MS;
    const defaults = opts.defaultTaskResources ?? DEFAULT_TASK_RESOURCES;
    const sched = createScheduler({ defaultStrategy: opts.defaultStrategy ?? 'binpack' });
    const journal = (this.journal = new Journal(committer, this.tasks, this.workers, (t) => this.stored(t), log));
    const registry = (this.registry = new WorkerRegistry(
      { ...opts, reconnectGraceMs: this.reconnectGraceMs },
      this.workers,
      sched,
      journal,
      clock,
      now,
      log,
      (workerId) => this.logs.workerGone(workerId),
    ));
    const offers = (this.offers = new OfferLedger(opts.ackTimeoutMs));
    const recovery = (this.recovery = new Recovery(log));
    const dispatch = (this.dispatch = new Dispatch(this.tasks, sched, offers, registry, recovery, journal, this.stats, defaults, clock, now, log, opts.mayAct));
    this.intake = new Intake(this.tasks, this.submissions, journal, dispatch, this.stats, defaults, now, log);
    this.attempts = new Attempts(this.tasks, offers, registry, dispatch, recovery, journal, this.stats, now, log);
    this.gates = dispatch.gate = new Gates(this.tasks, journal, dispatch, (t, reason) => this.attempts.kill(t, reason), now, log);
    this.edits = new TaskEdits(this.gates, offers, recovery);
    this.intake.resolve = (spec) => {
      checkNotBefore(spec, now());
      resolveDependencies(spec, this.ids, this.tasks.values());
    };
    this.retention = new Retention(this.tasks, this.submissions, registry, journal, opts, log, (t) => this.gates.removed(t));
    this.drains = new Drains(this.workers, sched, journal, now, log);
    this.schedules = new Schedules(
      {
        now,
        submit: async (spec, key, origin) => (await this.submit(spec, 1, key, origin))[0]!,
        task: (id) => this.tasks.get(id),
        taskOfKey: (key) => {
          const id = this.submissions.get(key)?.ids[0];
          return id === undefined ? undefined : this.tasks.get(id);
        },
        cancel: async (id) => void (await this.cancel([id], 0)),
        write: (key, value) => committer.write(key, value),
      },
      log,
    );
    this.logs = new LogRelay(registry.logChannel());
  }

  /** load puts records read from the store back in place after a restart. */
  load(tasks: Iterable<Task>, workers: Iterable<Worker>): void {
    for (const w of workers) {
      this.recovery.knownWorker(w, this.now() - this.reconnectGraceMs);
      this.registry.load(w);
      this.drains.track(w);
    }
    for (const t of tasks) {
      this.tasks.set(t.id, t);
      this.submissions.load(t);
      this.gates.load(t);
      if (isTerminal(t)) continue;
      this.dispatch.sequence(t.id);
      if (t.state === TaskState.PENDING) this.dispatch.hold(t);
      else if (t.state === TaskState.SCHEDULED) {
        this.registry.assign(t.workerId, t.id);
        this.dispatch.allocate(t);
      }
    }
    // A recovered pending task may be running on a worker whose Accepted never got stored: the
    // workers that were around get time to reconnect and report what they run (and finished)
    // before it is offered again. The hold ends early once they all have. A worker that does not
    // come back has killed such an attempt by its orphan timeout, which is shorter than the
    // reconnect grace: so the hold lasts at least that long, whatever recovery_grace says (a
    // shorter hold let a new leader run again what a slow worker had run). New tasks don't wait.
    this.recovery.endBy(this.clock.advance() + Math.max(this.opts.recoveryGraceMs, this.reconnectGraceMs));
  }

  // ---- tasks (schedctl) -------------------------------------------------

  /** submit stores count copies of spec as pending tasks and answers once they are committed (intake.ts). */
  submit(spec: TaskSpec, count = 1, key = '', origin?: TaskOrigin): Promise<Task[]> {
    return this.intake.submit(spec, count, key, origin);
  }

  /** stored: a task write landed (journal.ts): a new task is queued, an ended one lets its dependents go (gates.ts). */
  private stored(task: Task): void {
    this.intake.stored(task);
    this.gates.stored(task);
  }

  getTask(id: string): Task {
    const task = this.tasks.get(id);
    if (!task) throw new NotFoundError('task', id);
    return task;
  }

  /** view is the task as clients see it: a pending one says why it waits. */
  view(task: Task): Task {
    return this.dispatch.view(task);
  }

  /** committed resolves with the task as clients see it once the store holds its latest change. */
  async committed(id: string): Promise<Task> {
    return this.view(await this.journal.committed(id));
  }

  /** watch calls listener with each committed change of the task; returns the unsubscribe function. */
  watch(id: string, listener: TaskListener): () => void {
    this.getTask(id);
    return this.journal.watch(id, listener);
  }

  /** cancel stops tasks (attempts.ts); resolves once the changes are stored. */
  async cancel(ids: string[], graceMs: number): Promise<Task[]> {
    const tasks = ids.map((id) => this.getTask(id));
    await this.attempts.cancel(tasks, graceMs);
    return tasks;
  }

  /**
   * setMaxParallel changes the max_parallel of a task's whole group (tasks update); resolves once
   * every member is stored with it. Live members run on when it is lowered; a raised one lets
   * waiting members go at once.
   */
  setMaxParallel(id: string, maxParallel: number): Promise<Task> {
    return setGroupMaxParallel(this.getTask(id), maxParallel, this.tasks.values(), this.journal, this.dispatch);
  }

  /**
   * readLogs relays the output of a task's latest attempt from its worker; with follow, until
   * the attempt ends. Returns the function that stops it (the client went away).
   */
  readLogs(taskId: string, o: { stderr: boolean; tailLines?: number | undefined; follow: boolean }, sub: LogSubscriber): () => void {
    const task = this.getTask(taskId);
    if (task.attempt === 0 || !task.workerId) {
      throw new FailedPreconditionError(`task ${taskId} has not run yet (${TaskState[task.state].toLowerCase()}): it has no logs`);
    }
    return this.logs.start({ workerId: task.workerId, taskId, attempt: task.attempt, ...o }, sub);
  }

  // ---- workers (schedctl) -----------------------------------------------

  getWorker(id: string): Worker {
    return this.registry.getWorker(id);
  }

  workerView(w: Worker): Worker {
    return this.registry.workerView(w);
  }

  /** drain stops (or resumes) placements on a worker; what runs there goes on until deadlineMs, if given. Resolves once stored. */
  async drain(id: string, drain: boolean, deadlineMs = 0): Promise<Worker> {
    const worker = await this.drains.drain(this.registry.getWorker(id), drain, deadlineMs);
    if (!drain) this.dispatch.placeQueued();
    return worker;
  }

  /** removeWorker forgets a disconnected worker with nothing placed on it, in memory and in the store. */
  async removeWorker(id: string): Promise<Worker> {
    const worker = this.registry.remove(id);
    await this.journal.remove(workerKey(id));
    return worker;
  }

  // ---- worker streams (server/worker-service.ts) ------------------------

  /** checkHello throws when a worker may not join; call it before sending Welcome. */
  checkHello(hello: Hello, certificateName?: string): void {
    this.registry.checkHello(hello, certificateName);
  }

  welcomeFor(sessionId: string): { sessionId: string; pingIntervalMs: number; orphanTimeoutMs: number } {
    return this.registry.welcomeFor(sessionId);
  }

  /** hello registers a worker's new stream, after checkHello and Welcome, and squares what it runs with its tasks. */
  hello(link: WorkerLink, hello: Hello, certificateName?: string): void {
    const session = this.registry.open(link, hello, certificateName);
    this.attempts.reconcile(session, hello.running);
    this.registry.opened(session, hello);
    this.dispatch.placeQueued();
  }

  /** seen records that a worker's stream carried a message (a pong or any report). */
  seen(workerId: string): void {
    this.registry.seen(workerId);
  }

  /** pong: the first one after a Hello ends the window in which kept results are resent. */
  pong(workerId: string, stats?: Pong): void {
    const first = this.registry.pong(workerId, stats);
    if (!first) return;
    this.recovery.reported(workerId);
    this.attempts.reported(first);
    this.dispatch.placeQueued();
  }

  accepted(workerId: string, ta: TaskAttempt | undefined): void {
    this.attempts.accepted(workerId, ta);
  }

  rejected(workerId: string, ta: TaskAttempt | undefined, reason: string): void {
    this.attempts.rejected(workerId, ta, reason);
  }

  started(workerId: string, ta: TaskAttempt | undefined, pid: number, startedUnixMs: bigint): void {
    this.attempts.started(workerId, ta, pid, startedUnixMs);
  }

  /** finished stores a result; the worker is acknowledged once it is committed (or was already). */
  finished(workerId: string, f: Finished): void {
    this.attempts.finished(workerId, f);
  }

  /** A chunk of a relayed log from a worker. */
  logChunk(workerId: string, c: LogChunk): void {
    this.logs.chunk(workerId, c);
  }

  /** leaving: a worker shutting down gracefully takes nothing new while its tasks finish. */
  leaving(workerId: string, reason: string): void {
    this.registry.leaving(workerId, reason);
  }

  /** disconnect marks a worker gone: its tasks wait for the reconnect grace, or not at all after a goodbye. */
  disconnect(link: WorkerLink, workerId: string, reason: string, graceful = false): void {
    this.registry.disconnect(link, workerId, reason, graceful);
  }

  // ---- timers -----------------------------------------------------------

  /**
   * tick runs from one interval timer: ack and schedule deadlines, reconnect grace, pings and
   * missed pongs, deferred and failed writes, retention, placement. utilization is the event
   * loop's busy share since the last tick (see fair-clock.ts).
   */
  tick(utilization = 0): void {
    if (this.opts.mayAct && !this.opts.mayAct()) return;
    const now = this.now();
    this.clock.calibrate(utilization);
    const clock = this.clock.value;
    this.attempts.expireOffers(clock);
    for (const task of this.dispatch.overdue(now)) void this.attempts.kill(task, 'schedule-timeout');
    for (const workerId of this.registry.graceEnded(clock)) this.attempts.workerGone(workerId);
    for (const workerId of this.drains.due(now)) this.attempts.drainDue(workerId);
    this.registry.checkLiveness(clock);
    this.journal.retryTasks();
    this.retention.sweep(now);
    this.journal.retryWorkers();
    this.schedules.tick();
    this.dispatch.placeQueued();
  }

  /** sweepFinished deletes finished tasks past retention (retention.ts); returns how many. */
  sweepFinished(now: number): number {
    return this.retention.sweepFinished(now);
  }

  /** sweepWorkers forgets workers gone past retention (retention.ts); returns how many. */
  sweepWorkers(now: number): number {
    return this.retention.sweepWorkers(now);
  }

  /** closeAll ends every worker stream (shutdown), after handing deferred changes to the store. */
  closeAll(reason: string): void {
    this.journal.flushDeferred();
    this.registry.closeAll(reason);
    this.events.close();
  }

  // ---- metrics ----------------------------------------------------------

  /** Real time the deadline clock did not count because the manager was stalled or saturated (metrics). */
  get stalledMs(): number {
    return this.clock.stalledMs;
  }

  /** Gauges for metrics: tasks waiting in the placement queue and offers awaiting an answer. */
  queueDepth(): { queued: number; offered: number; held: number } {
    return { queued: this.dispatch.queued(), offered: this.offers.size, held: this.recovery.size };
  }

  counts(): { workersConnected: number; workersTotal: number; tasksByState: Record<string, number> } {
    const tasksByState: Record<string, number> = { pending: 0, scheduled: 0, done: 0, dead: 0 };
    for (const t of this.tasks.values()) {
      const name = TaskState[t.state].toLowerCase();
      tasksByState[name] = (tasksByState[name] ?? 0) + 1;
    }
    return { workersConnected: this.registry.connected, workersTotal: this.workers.size, tasksByState };
  }
}
