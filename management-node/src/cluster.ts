// The cluster is the manager's working copy of every task and worker. Each
// state change is written through the group committer; nobody hears of a
// change (RPC answer, watcher, FinishedAck) before it is committed.
import { clone, create, equals, type MessageInitShape } from '@bufbuild/protobuf';
import {
  ResourcesSchema,
  TaskSchema,
  TaskSpecSchema,
  TaskState,
  WorkerSchema,
  WorkerState,
  type Task,
  type TaskSpec,
  type Worker,
} from '../../proto/gen/sched/v1/types_pb.js';
import type { ConnectResponseSchema, Finished, Hello, LogChunk, Pong, TaskAttempt } from '../../proto/gen/sched/v1/worker_pb.js';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  PermissionDeniedError,
  InvalidArgumentError,
  NotFoundError,
  StoreRefusedError,
  StoreUnavailableError,
  UnauthenticatedError,
} from '../../common/errors.js';
import { newTaskId } from '../../common/ids.js';
import { randomUUID } from 'node:crypto';
import type { Logger } from '../../common/logger.js';
import { LogRelay, type LogSubscriber } from './log-relay.js';
import type { GroupCommitter } from './store/group-commit.js';
import { encodeTask, encodeWorker, taskKey, workerKey } from './store/records.js';
import { createFairClock, type FairClock } from './fair-clock.js';
import { orderTimes, orphanTimeoutMs, validateSpec } from './task-rules.js';

export { orphanTimeoutMs };
import { checkIdempotencyKey, Submissions, type Submission } from './submissions.js';
import { boundFinished, checkHello as checkHelloFields } from './worker-input.js';
import { constraintList, holds, missingLabel } from './scheduler/feasibility.js';
import { createScheduler, type Resources, type Scheduler, type Strategy, type WorkerInfo } from './scheduler/scheduler.js';

/** One manager→worker message: the oneof of ConnectResponse. */
export type WorkerMessage = NonNullable<MessageInitShape<typeof ConnectResponseSchema>['msg']>;

/** A live worker stream, as the cluster sees it. */
export interface WorkerLink {
  readonly sessionId: string;
  readonly address: string;
  send(msg: WorkerMessage): void;
  close(reason: string): void;
}

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
}

interface Session {
  link: WorkerLink;
  workerId: string;
  lastPongAt: number;
  nextPingAt: number;
  pingSeq: bigint;
  /**
   * Tasks scheduled here that the worker's Hello did not list as running. Results it kept
   * arrive right after Welcome, before its first Pong; whatever is still here then is lost.
   */
  unreported?: Set<string>;
  /** Its first Pong arrived: what it runs and kept is known. */
  reported?: boolean;
  /** Offers to this worker its Hello did not list: unless a result comes first, it does not run them. */
  unreportedOffers?: Set<string>;
  /** Another stream claimed this worker's id: this one must answer a ping (any message) after this time, or go. */
  probeSince?: number;
}

interface Offer {
  taskId: string;
  attempt: number;
  workerId: string;
  /** On the deadline clock: unanswered by then, the offer is withdrawn; still unconfirmed a second time, the worker is dropped. */
  deadline: number;
  /**
   * The ack timeout passed and CancelTask was sent. The task is offered elsewhere only once this
   * worker confirms it does not run the attempt (Rejected, or its Finished), or is gone past its grace.
   */
  withdrawn: boolean;
}

export type TaskListener = (task: Task) => void;

const RETENTION_SWEEP_MS = 5000;
const SWEEP_BATCH = 1000;
const DEFAULT_RETENTION_MS = 24 * 3600_000;
const DEFAULT_MAX_FINISHED = 100_000;
const DEFAULT_RECONNECT_GRACE_MS = 10_000;
/** A quarter core and 64 MiB, like a small Nomad task. */
export const DEFAULT_TASK_RESOURCES: Resources = { millicpu: 250, memoryBytes: 64 * 1024 * 1024 };
/** A task written again and again while a client waits for it to settle: answer after this many rounds. */
const MAX_COMMIT_WAITS = 8;
/** Tasks one RunTask may create (--count). */
const MAX_COUNT = 10_000;

const TERMINAL = new Set([TaskState.DONE, TaskState.DEAD]);
export const isTerminal = (t: Task): boolean => TERMINAL.has(t.state);

/** Running totals since start, exported as Prometheus counters (metrics.ts). */
export interface ClusterStats {
  submitted: number;
  offers: number;
  rejected: number;
  ackTimeouts: number;
  retried: number;
  done: number;
  /** Dead tasks by reason (the part before any ":"). */
  dead: Map<string, number>;
}

export class Cluster {
  readonly stats: ClusterStats = { submitted: 0, offers: 0, rejected: 0, ackTimeouts: 0, retried: 0, done: 0, dead: new Map() };
  readonly tasks = new Map<string, Task>();
  readonly workers = new Map<string, Worker>();
  private readonly sessions = new Map<string, Session>();
  /** The placement core: queue of pending tasks, free resources per worker, reservations. */
  private readonly sched: Scheduler;
  /** Submission order of live tasks, kept across re-queues so a retried task keeps its place. */
  private readonly seqs = new Map<string, number>();
  private nextSeq = 0;
  /** Offers awaiting Accepted/Rejected; deadlines are FIFO because the ack timeout is constant. */
  private readonly offers = new Map<string, Offer>();
  private readonly offerDeadlines: Offer[] = [];
  /** Offered or running task ids per worker: the load the scheduler sees. */
  private readonly assigned = new Map<string, Set<string>>();
  private readonly listeners = new Map<string, Set<TaskListener>>();
  /** Records whose last write failed; rewritten on the next tick. */
  private readonly dirtyTasks = new Set<string>();
  private readonly dirtyWorkers = new Set<string>();
  private readonly dirtyDeletes = new Set<string>();
  /** Task writes not yet answered by the store (or deferred), and who waits for them to land. */
  private readonly inflight = new Map<string, { writes: number; waiters: Array<() => void> }>();
  /** Tasks with a change to write on the next tick (see persistLater). */
  private readonly deferred = new Set<string>();
  private nextRetentionSweep = 0;
  /** Pending tasks with a schedule timeout, soonest first. */
  private readonly scheduleDeadlines: Array<{ taskId: string; at: number }> = [];
  /** Scheduled tasks being cancelled, with their SIGTERM→SIGKILL grace (0 = worker default). */
  private readonly cancelling = new Map<string, number>();
  /** Disconnected workers with scheduled tasks: when their reconnect grace ends. */
  private readonly graceEnds = new Map<string, number>();
  /**
   * Pending tasks loaded after a restart, held until every worker that was connected before it
   * has reconnected and reported (awaitingReport empty), or until holdRecoveredUntil.
   */
  private readonly recovered = new Set<string>();
  private holdRecoveredUntil = 0;
  private readonly awaitingReport = new Set<string>();
  /** Under mutual TLS: which worker id each certificate name is bound to. */
  private readonly certificates = new Map<string, string>();
  /** Workers known from the store at startup: only they may report attempts the store does not hold yet. */
  private readonly loadedWorkers = new Set<string>();
  /** Idempotency keys of RunTask requests, kept as long as their tasks. */
  private readonly submissions = new Submissions();
  /** Submitted tasks whose first write has not landed: no worker is offered them until it has. */
  private readonly unstored = new Set<string>();
  private placeScheduled = false;
  private scheduleDeadlinesSorted = true;
  /** The clock of deadlines that others must meet (acks, pongs, grace); see fair-clock.ts. */
  private readonly clock: FairClock;
  /** Open `tasks logs` reads, relayed from the workers' streams. */
  private readonly logs = new LogRelay({
    readLogs: (workerId, requestId, r) => {
      const session = this.sessions.get(workerId);
      if (!session) return false;
      session.link.send({
        case: 'readLogs',
        value: { requestId, task: { taskId: r.taskId, attempt: r.attempt }, stderr: r.stderr, tailLines: r.tailLines, follow: r.follow },
      });
      return true;
    },
    stopLogs: (workerId, requestId) => this.sendTo(workerId, { case: 'stopLogs', value: { requestId } }),
  });
  private readonly now: () => number;
  private get reconnectGrace(): number {
    return this.opts.reconnectGraceMs ?? DEFAULT_RECONNECT_GRACE_MS;
  }

  constructor(
    private readonly committer: GroupCommitter,
    private readonly opts: ClusterOptions,
    private readonly log: Logger,
  ) {
    this.now = opts.now ?? Date.now;
    this.clock = createFairClock(this.now, opts.maxClockStepMs);
    this.sched = createScheduler({ defaultStrategy: opts.defaultStrategy ?? 'binpack' });
  }

  // ---- recovery ---------------------------------------------------------

  /** load puts records read from the store back in place after a restart. */
  load(tasks: Iterable<Task>, workers: Iterable<Worker>): void {
    for (const w of workers) {
      // No stream survives a restart: every worker must dial in again.
      // Workers that may run tasks the store does not know of (offers go out before their write lands).
      this.loadedWorkers.add(w.id);
      if (w.certificateName) this.certificates.set(w.certificateName, w.id);
      if (w.state === WorkerState.CONNECTED || Number(w.lastSeenUnixMs) >= this.now() - this.reconnectGrace) this.awaitingReport.add(w.id);
      if (w.state === WorkerState.CONNECTED) {
        w.state = WorkerState.DISCONNECTED;
        void this.persistWorker(w).catch(() => undefined);
      }
      this.workers.set(w.id, w);
      this.graceEnds.set(w.id, this.clock.advance() + this.reconnectGrace);
      // Known but offline: counted in placement summaries, offered nothing until it dials in.
      this.sched.upsertWorker(this.workerInfo(w));
      this.sched.removeWorker(w.id);
    }
    for (const t of tasks) {
      this.tasks.set(t.id, t);
      this.submissions.load(t);
      if (isTerminal(t)) continue;
      this.seqs.set(t.id, this.nextSeq++);
      if (t.state === TaskState.PENDING) this.recovered.add(t.id);
      else if (t.state === TaskState.SCHEDULED) {
        this.assign(t.workerId, t.id);
        this.sched.allocate(t.id, t.workerId, this.resourcesOf(t));
      }
    }
    // A recovered pending task may be running on a worker whose Accepted never got stored: the
    // workers that were around get time to reconnect and report what they run (and finished)
    // before it is offered again. The hold ends early once they all have. New tasks don't wait.
    this.holdRecoveredUntil = this.clock.advance() + this.opts.recoveryGraceMs;
  }

  // ---- tasks ------------------------------------------------------------

  /**
   * submit stores count copies of spec as pending tasks (one group when count > 1) and answers
   * once they are committed. A task is offered to a worker only after its write has landed, so no
   * crash can erase a task that runs. With an idempotency key, a repeat of the request (also one
   * racing it) answers with the same tasks and creates none.
   */
  async submit(spec: TaskSpec, count = 1, key = ''): Promise<Task[]> {
    validateSpec(spec);
    if (!Number.isInteger(count) || count < 1 || count > MAX_COUNT) {
      throw new InvalidArgumentError('count', `must be between 1 and ${MAX_COUNT}`);
    }
    spec.resources = this.requestOf(spec);
    if (key) {
      checkIdempotencyKey(key);
      // Checked and reserved in this same turn, before any await: two requests cannot both create.
      const existing = this.submissions.get(key);
      if (existing) return this.resubmit(existing, spec, count);
    }
    const groupId = count > 1 ? randomUUID() : '';
    const sub = key ? this.submissions.reserve(key, groupId, count) : undefined;
    const tasks: Task[] = [];
    for (let i = 0; i < count; i++) tasks.push(this.createTask(spec, groupId, i, count, sub));
    const stored = this.storeNew(tasks, sub !== undefined);
    if (sub) sub.stored = stored.catch(() => undefined);
    await stored;
    return tasks;
  }

  /** resubmit answers a repeated key with its tasks, creating those a crash kept from being stored. */
  private async resubmit(sub: Submission, spec: TaskSpec, count: number): Promise<Task[]> {
    if (count !== sub.size) {
      throw new FailedPreconditionError(`idempotency_key ${JSON.stringify(sub.key)} was used for ${sub.size} task(s), not ${count}`);
    }
    await sub.stored;
    const known = sub.ids.map((id) => (id === undefined ? undefined : this.tasks.get(id)));
    const first = known.find((t) => t !== undefined);
    if (first?.spec && !equals(TaskSpecSchema, first.spec, spec)) {
      throw new FailedPreconditionError(`idempotency_key ${JSON.stringify(sub.key)} was used for a different task spec`);
    }
    const missing: Task[] = [];
    known.forEach((t, i) => {
      if (!t) missing.push(this.createTask(first?.spec ?? spec, sub.groupId, i, count, sub));
    });
    if (missing.length > 0) {
      this.log.info({ key: sub.key, created: missing.length }, 'repeated submission: creating the tasks a crash kept from being stored');
      const stored = this.storeNew(missing, true);
      sub.stored = stored.catch(() => undefined);
      await stored;
    }
    return sub.ids.map((id) => {
      const task = this.getTask(id!);
      // Its first write failed and is being retried: it does not exist for clients yet.
      if (this.unstored.has(task.id)) throw new StoreUnavailableError(`task ${task.id} is not stored yet (the manager keeps retrying)`);
      return this.view(task);
    });
  }

  private createTask(spec: TaskSpec, groupId: string, index: number, size: number, sub: Submission | undefined): Task {
    const now = this.now();
    const task = create(TaskSchema, {
      id: newTaskId(now),
      spec,
      state: TaskState.PENDING,
      createdUnixMs: BigInt(now),
      groupId,
      ...(size > 1 ? { groupIndex: index, groupSize: size } : {}),
      ...(sub ? { idempotencyKey: sub.key } : {}),
    });
    if (sub) sub.ids[index] = task.id;
    this.tasks.set(task.id, task);
    this.seqs.set(task.id, this.nextSeq++);
    this.unstored.add(task.id);
    return task;
  }

  /**
   * storeNew writes new tasks; each is queued for placement as its write lands (persistTask).
   * On failure a keyed task is kept and rewritten every tick (a retry with the key waits for it);
   * an unkeyed one is deleted (a failed txn may still have been applied), and the client may retry.
   */
  private async storeNew(tasks: Task[], keyed: boolean): Promise<void> {
    try {
      await Promise.all(tasks.map((t) => this.persistTask(t)));
    } catch (err) {
      if (!keyed) for (const t of tasks) this.discard(t);
      throw err;
    }
    this.stats.submitted += tasks.length;
  }

  /** discard forgets a task whose submission failed; it was never offered. */
  private discard(task: Task): void {
    this.forget(task.id);
    this.unstored.delete(task.id);
    this.tasks.delete(task.id);
    this.dirtyTasks.delete(task.id);
    this.deleteKey(taskKey(task.id));
  }

  /** admit queues a task for placement once its first write has landed. */
  private admit(task: Task): void {
    if (task.state !== TaskState.PENDING || this.tasks.get(task.id) !== task) return;
    this.enqueue(task);
    const timeout = task.spec?.scheduleTimeoutMs ?? 0;
    if (timeout > 0) {
      this.scheduleDeadlines.push({ taskId: task.id, at: Number(task.createdUnixMs) + timeout });
      this.scheduleDeadlinesSorted = false;
    }
    this.placeSoon();
  }

  /** placeSoon runs placement once after the current burst of events (one run for a whole group). */
  private placeSoon(): void {
    if (this.placeScheduled) return;
    this.placeScheduled = true;
    queueMicrotask(() => {
      this.placeScheduled = false;
      this.placeQueued();
    });
  }

  getTask(id: string): Task {
    const task = this.tasks.get(id);
    if (!task) throw new NotFoundError('task', id);
    return task;
  }

  /** watch calls listener with each committed change of the task; returns the unsubscribe function. */
  watch(id: string, listener: TaskListener): () => void {
    this.getTask(id);
    let set = this.listeners.get(id);
    if (!set) this.listeners.set(id, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(id);
    };
  }

  /**
   * cancel stops tasks: pending ones end dead at once (an outstanding offer is withdrawn);
   * scheduled ones are told to stop and end dead when their worker reports the exit.
   * Resolves once the changes are stored.
   */
  async cancel(ids: string[], graceMs: number): Promise<Task[]> {
    const tasks = ids.map((id) => this.getTask(id));
    const writes: Array<Promise<void>> = [];
    for (const task of tasks) {
      if (task.state === TaskState.PENDING) {
        const offer = this.offers.get(task.id);
        if (offer) this.sendCancel(offer.workerId, task.id, offer.attempt, 'cancelled', graceMs);
        writes.push(this.kill(task, 'cancelled'));
      } else if (task.state === TaskState.SCHEDULED) {
        this.cancelling.set(task.id, graceMs);
        this.sendCancel(task.workerId, task.id, task.attempt, 'cancelled', graceMs);
      }
    }
    await Promise.all(writes);
    return tasks;
  }

  private sendCancel(workerId: string, taskId: string, attempt: number, reason: string, graceMs = 0): void {
    this.sendTo(workerId, { case: 'cancelTask', value: { task: { taskId, attempt }, reason, graceMs } });
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

  /** A chunk of a relayed log from a worker. */
  logChunk(workerId: string, c: LogChunk): void {
    this.logs.chunk(workerId, c);
  }

  // ---- workers ----------------------------------------------------------

  /** workerView is the worker as clients see it, with what is allocated on it now. */
  workerView(w: Worker): Worker {
    const used = this.sched.used(w.id);
    const copy = clone(WorkerSchema, w);
    copy.allocated = create(ResourcesSchema, { millicpu: BigInt(used?.millicpu ?? 0), memoryBytes: BigInt(used?.memoryBytes ?? 0) });
    return copy;
  }

  /** drain stops (or resumes) placements on a worker; what runs there goes on. Resolves once stored. */
  async drain(id: string, drain: boolean): Promise<Worker> {
    const worker = this.getWorker(id);
    worker.draining = drain;
    this.sched.setDraining(id, drain || worker.leaving);
    this.log.info({ worker: id, draining: drain }, drain ? 'worker drained' : 'worker undrained');
    await this.persistWorker(worker);
    if (!drain) this.placeQueued();
    return worker;
  }

  /** leaving: a worker shutting down gracefully takes nothing new while its tasks finish. */
  leaving(workerId: string, reason: string): void {
    const worker = this.workers.get(workerId);
    if (!worker || !this.sessions.has(workerId)) return;
    worker.leaving = true;
    this.sched.setDraining(workerId, true);
    this.log.info({ worker: workerId, reason }, 'worker leaving');
    void this.persistWorker(worker).catch(() => undefined);
  }

  getWorker(id: string): Worker {
    const worker = this.workers.get(id);
    if (!worker) throw new NotFoundError('worker', id);
    return worker;
  }

  /**
   * checkHello throws when a worker may not join; call it before sending Welcome. A Hello for an
   * id with a live session is refused (the live one keeps its tasks), and that session is probed:
   * if it is a half-open leftover it fails the probe and the worker's next redial gets in.
   */
  checkHello(hello: Hello, certificateName?: string): void {
    checkHelloFields(hello);
    if (this.opts.joinToken && hello.token !== this.opts.joinToken) {
      throw new UnauthenticatedError(`worker ${hello.workerId}: invalid join token`);
    }
    if (certificateName !== undefined) {
      // The first Hello binds a certificate to a worker id; after that each names only the other.
      const owner = this.certificates.get(certificateName);
      if (owner !== undefined && owner !== hello.workerId) {
        throw new PermissionDeniedError(`certificate ${JSON.stringify(certificateName)} belongs to worker ${owner}, not ${hello.workerId}`);
      }
      const bound = this.workers.get(hello.workerId)?.certificateName;
      if (bound && bound !== certificateName) {
        throw new PermissionDeniedError(`worker ${hello.workerId} is bound to certificate ${JSON.stringify(bound)}, not ${JSON.stringify(certificateName)}`);
      }
    }
    const live = this.sessions.get(hello.workerId);
    if (live) {
      if (live.probeSince === undefined) {
        live.probeSince = this.clock.advance();
        live.pingSeq += 1n;
        live.link.send({ case: 'ping', value: { seq: live.pingSeq } });
      }
      throw new AlreadyExistsError(`worker ${hello.workerId} is already connected (session ${live.link.sessionId}); retry once that session is gone`);
    }
  }

  /** hello registers a worker's new stream, after checkHello and Welcome. */
  hello(link: WorkerLink, hello: Hello, certificateName?: string): void {
    const now = this.now();
    const known = this.workers.get(hello.workerId);
    const certificate = certificateName ?? known?.certificateName ?? '';
    if (certificate) this.certificates.set(certificate, hello.workerId);
    const worker = create(WorkerSchema, {
      id: hello.workerId,
      address: link.address,
      state: WorkerState.CONNECTED,
      labels: hello.labels,
      version: hello.version,
      connectedUnixMs: BigInt(now),
      lastSeenUnixMs: BigInt(now),
      draining: known?.draining ?? false,
      certificateName: certificate,
      ...(hello.capacity ? { capacity: hello.capacity } : {}),
      ...(hello.hardware ? { hardware: hello.hardware } : {}),
    });
    this.workers.set(worker.id, worker);
    const at = this.clock.advance();
    this.sessions.set(worker.id, { link, workerId: worker.id, lastPongAt: at, nextPingAt: at + this.opts.pingIntervalMs, pingSeq: 0n });
    this.graceEnds.delete(worker.id);
    this.sched.upsertWorker(this.workerInfo(worker));
    this.reconcile(worker.id, link, hello.running);
    this.log.debug({ worker: worker.id, running: hello.running.map((ta) => `${ta.taskId}.${ta.attempt}`) }, 'hello');
    this.refreshLoad(worker);
    this.log.info({ worker: worker.id, address: link.address, running: hello.running.length }, 'worker connected');
    void this.persistWorker(worker).catch(() => undefined);
    this.placeQueued();
  }

  /** The Welcome a worker gets: how often it is pinged, and how long it keeps tasks without the manager. */
  welcomeFor(sessionId: string): { sessionId: string; pingIntervalMs: number; orphanTimeoutMs: number } {
    return { sessionId, pingIntervalMs: this.opts.pingIntervalMs, orphanTimeoutMs: orphanTimeoutMs(this.reconnectGrace) };
  }

  /** reconcile compares what a reconnecting worker runs with what the cluster believes. */
  private reconcile(workerId: string, link: WorkerLink, running: TaskAttempt[]): void {
    const session = this.sessions.get(workerId)!;
    const listed = new Set(running.map((ta) => `${ta.taskId}.${ta.attempt}`));
    const unreported = new Set<string>();
    for (const taskId of this.assigned.get(workerId) ?? []) {
      const task = this.tasks.get(taskId);
      if (task?.state === TaskState.SCHEDULED && !listed.has(`${taskId}.${task.attempt}`)) unreported.add(taskId);
    }
    if (unreported.size > 0) session.unreported = unreported;
    const offers = new Set<string>();
    for (const o of this.offers.values()) if (o.workerId === workerId && !listed.has(`${o.taskId}.${o.attempt}`)) offers.add(o.taskId);
    if (offers.size > 0) session.unreportedOffers = offers;
    for (const ta of running) {
      const offer = this.offers.get(ta.taskId);
      if (offer?.withdrawn && offer.workerId === workerId && offer.attempt === ta.attempt) {
        // It accepted the offer we gave up on: stop it; its Finished lets the task go elsewhere.
        this.sendCancel(workerId, ta.taskId, ta.attempt, 'offer withdrawn (ack timeout)');
        continue;
      }
      const task = this.currentAttempt(workerId, ta);
      if (task && !isTerminal(task)) {
        // Running there: its Accepted may have been lost with the old stream.
        if (task.state === TaskState.PENDING) this.acceptImplicitly(task);
        const grace = this.cancelling.get(task.id);
        if (grace !== undefined) this.sendCancel(workerId, task.id, task.attempt, 'cancelled', grace);
        continue;
      }
      link.send({ case: 'cancelTask', value: { task: ta, reason: 'attempt superseded' } });
    }
  }

  /**
   * disconnect marks a worker gone. Its scheduled tasks wait for the reconnect grace, unless it
   * said goodbye (graceful: it stopped them itself), in which case they are lost at once.
   */
  disconnect(link: WorkerLink, workerId: string, reason: string, graceful = false): void {
    const session = this.sessions.get(workerId);
    if (!session || session.link !== link) return;
    this.sessions.delete(workerId);
    const worker = this.workers.get(workerId);
    if (!worker) return;
    worker.state = WorkerState.DISCONNECTED;
    this.sched.removeWorker(workerId);
    this.logs.workerGone(workerId);
    this.log.warn({ worker: workerId, reason }, 'worker disconnected');
    void this.persistWorker(worker).catch(() => undefined);
    // Counted from now, when the manager stops sending: the worker has heard nothing since, so its
    // orphan timeout (shorter) kills what it runs before the grace ends here.
    this.graceEnds.set(workerId, this.clock.advance() + (graceful ? 0 : this.reconnectGrace));
    // Offers stay with it: it may have accepted and run them, and says so when it reconnects.
  }

  /** pong: the first one after a Hello ends the window in which kept results are resent. */
  pong(workerId: string, stats?: Pong): void {
    this.seen(workerId);
    const session = this.sessions.get(workerId);
    const worker = this.workers.get(workerId);
    if (session && worker && stats) {
      worker.loadAvg = [stats.load1, stats.load5, stats.load15];
      worker.memoryFreeBytes = stats.memoryFreeBytes;
      this.sched.upsertWorker(this.workerInfo(worker, stats));
    }
    if (!session || session.reported) return;
    // The first Pong after Hello: the worker has listed what it runs and resent what it kept.
    session.reported = true;
    if (this.awaitingReport.delete(workerId) && this.awaitingReport.size === 0) this.holdRecoveredUntil = 0;
    for (const taskId of session.unreported ?? []) {
      const task = this.tasks.get(taskId);
      if (task && task.state === TaskState.SCHEDULED && task.workerId === workerId) this.lose(task, 'worker-lost: the worker no longer runs it');
    }
    delete session.unreported;
    // Offers made to an earlier stream that it neither runs nor has a result of: it never got them.
    for (const taskId of session.unreportedOffers ?? []) {
      const offer = this.offers.get(taskId);
      // It never got them (no refusal): they may go to it again.
      if (offer?.workerId === workerId) this.retryOffer(taskId, workerId, `worker ${workerId} reconnected without the offer`, 'ack-timeout', false);
    }
    delete session.unreportedOffers;
    this.placeQueued();
  }

  /** seen records that a worker's stream carried a message (a pong or any report). */
  seen(workerId: string): void {
    const session = this.sessions.get(workerId);
    if (!session) return;
    session.lastPongAt = this.clock.advance();
    if (session.probeSince !== undefined && session.lastPongAt > session.probeSince) delete session.probeSince;
    const worker = this.workers.get(workerId);
    if (worker) worker.lastSeenUnixMs = BigInt(this.now());
  }

  accepted(workerId: string, ta: TaskAttempt | undefined): void {
    if (!ta) return;
    const task = this.tasks.get(ta.taskId);
    const offer = this.offers.get(ta.taskId);
    if (offer?.withdrawn && offer.workerId === workerId && offer.attempt === ta.attempt) return; // CancelTask is on its way; its Finished settles it
    if (!task || !offer || offer.workerId !== workerId || offer.attempt !== ta.attempt || task.attempt !== ta.attempt) {
      if (!task || task.attempt !== ta.attempt || task.workerId !== workerId || isTerminal(task)) {
        this.sendTo(workerId, { case: 'cancelTask', value: { task: ta, reason: 'offer expired' } });
      }
      return;
    }
    this.offers.delete(ta.taskId);
    this.markScheduled(task);
  }

  rejected(workerId: string, ta: TaskAttempt | undefined, reason: string): void {
    if (!ta) return;
    const offer = this.offers.get(ta.taskId);
    if (!offer || offer.workerId !== workerId || offer.attempt !== ta.attempt) return;
    this.log.info({ task: ta.taskId, worker: workerId, reason }, offer.withdrawn ? 'withdrawn offer confirmed' : 'offer rejected');
    if (!offer.withdrawn) this.stats.rejected++;
    const why = offer.withdrawn ? `no answer from worker ${workerId} within the ack timeout` : `rejected by worker ${workerId}: ${reason}`;
    this.retryOffer(ta.taskId, workerId, why, offer.withdrawn ? 'ack-timeout' : 'no worker accepted the task');
  }

  started(workerId: string, ta: TaskAttempt | undefined, pid: number, startedUnixMs: bigint): void {
    if (ta && this.offers.get(ta.taskId)?.withdrawn) return;
    const task = ta && this.currentAttempt(workerId, ta);
    if (!task || isTerminal(task)) return;
    task.pid = pid;
    task.startedUnixMs = startedUnixMs;
    if (task.state === TaskState.PENDING) this.acceptImplicitly(task);
    else this.persistLater(task);
    orderTimes(task);
  }

  /** finished stores a result; the worker is acknowledged once it is committed (or was already). */
  finished(workerId: string, f: Finished): void {
    const ta = f.task;
    if (!ta) return;
    boundFinished(f);
    const ack = () => this.sendTo(workerId, { case: 'finishedAck', value: { task: ta } });
    const offer = this.offers.get(ta.taskId);
    const withdrawn = offer?.withdrawn === true && offer.workerId === workerId && offer.attempt === ta.attempt;
    // A withdrawn offer that was run anyway and stopped by our CancelTask (or lost) did not run to
    // its end: the task goes back to the queue. One that ended on its own ran: its result stands.
    if (withdrawn && (f.lost || f.signal !== '')) {
      this.retryOffer(ta.taskId, workerId, `offer to worker ${workerId} withdrawn (no answer within the ack timeout)`, 'ack-timeout');
      ack();
      return;
    }
    const task = withdrawn ? this.tasks.get(ta.taskId) : this.currentAttempt(workerId, ta);
    if (task && isTerminal(task)) {
      // Already recorded (a repeat): acknowledged once that record is stored, not before, or the
      // worker would drop its only durable copy while the manager's write is still failing.
      this.committed(task.id).then(ack, () => undefined);
      return;
    }
    if (!task) {
      // Unknown or superseded: nothing to store, but let the worker forget it.
      const current = this.tasks.get(ta.taskId);
      this.log.info(
        { task: ta.taskId, attempt: ta.attempt, worker: workerId, state: current ? TaskState[current.state] : 'unknown', currentAttempt: current?.attempt, currentWorker: current?.workerId },
        'result not stored: not the current attempt of this worker',
      );
      ack();
      return;
    }
    if (f.lost) {
      // Not a result: the worker lost the attempt (it restarted, or lost the manager too long).
      const why = `worker-lost: ${f.error || 'the worker killed it'}`;
      if (task.state === TaskState.PENDING) this.retryOffer(task.id, workerId, why, 'worker-lost');
      else this.lose(task, why);
      this.committed(task.id).then(ack, () => undefined);
      return;
    }
    this.log.debug({ task: task.id, attempt: ta.attempt, worker: workerId, state: TaskState[task.state] }, 'result');
    this.offers.delete(task.id);
    this.forget(task.id);
    this.unassign(workerId, task.id);
    // A cancelled task that exited ran, but not to its end: it is dead, with how it ended kept.
    const cancelled = this.cancelling.delete(task.id);
    task.state = cancelled || f.startFailed ? TaskState.DEAD : TaskState.DONE;
    if (cancelled) task.deadReason = 'cancelled';
    else if (f.startFailed) task.deadReason = 'start-failed';
    this.countEnd(task);
    task.exitCode = f.exitCode;
    task.signal = f.signal;
    task.error = f.error;
    task.pid = f.pid;
    if (f.startedUnixMs) task.startedUnixMs = f.startedUnixMs;
    if (!task.scheduledUnixMs) task.scheduledUnixMs = f.startedUnixMs || BigInt(this.now());
    task.finishedUnixMs = f.finishedUnixMs || BigInt(this.now());
    orderTimes(task);
    task.stdoutTail = f.stdoutTail;
    task.stderrTail = f.stderrTail;
    task.timedOut = f.timedOut;
    this.persistTask(task).then(ack, (err: unknown) => {
      // Refused for good: stored again without its output (see refused()); the worker may forget it once that lands.
      if (err instanceof StoreRefusedError) this.committed(task.id).then(ack, () => undefined);
    });
    this.placeQueued();
  }

  // ---- placement --------------------------------------------------------

  private enqueue(task: Task): void {
    const spec = task.spec;
    this.sched.enqueue({
      id: task.id,
      resources: this.resourcesOf(task),
      constraints: spec?.constraints ?? {},
      priority: spec?.priority ?? 0,
      seq: this.seqs.get(task.id) ?? this.nextSeq++,
      strategy: spec?.strategy === 'spread' || spec?.strategy === 'binpack' ? spec.strategy : undefined,
    });
  }

  /** forget drops a task from placement: queue, exclusions, allocation, recovery hold. */
  private forget(taskId: string): void {
    this.sched.remove(taskId);
    this.seqs.delete(taskId);
    this.recovered.delete(taskId);
  }

  /** requestOf is the spec's resource request with the manager's defaults for what it leaves out. */
  private requestOf(spec: TaskSpec): TaskSpec['resources'] {
    const d = this.opts.defaultTaskResources ?? DEFAULT_TASK_RESOURCES;
    return create(ResourcesSchema, {
      millicpu: spec.resources?.millicpu || BigInt(d.millicpu),
      memoryBytes: spec.resources?.memoryBytes || BigInt(d.memoryBytes),
    });
  }

  private resourcesOf(task: Task): Resources {
    const r = task.spec?.resources;
    const d = this.opts.defaultTaskResources ?? DEFAULT_TASK_RESOURCES;
    return { millicpu: Number(r?.millicpu || d.millicpu), memoryBytes: Number(r?.memoryBytes || d.memoryBytes) };
  }

  private workerInfo(w: Worker, stats?: Pong): WorkerInfo {
    return {
      id: w.id,
      capacity: { millicpu: Number(w.capacity?.millicpu ?? 0n), memoryBytes: Number(w.capacity?.memoryBytes ?? 0n) },
      labels: w.labels,
      draining: w.draining || w.leaving,
      load1: stats?.load1,
      memoryFreeBytes: stats?.memoryFreeBytes ? Number(stats.memoryFreeBytes) : undefined,
    };
  }

  /**
   * pendingReason says why a pending task waits: its offer, the recovery hold, or the
   * scheduler's placement summary ("0/3 workers fit: 2 insufficient memory, ...").
   */
  private pendingReason(task: Task): string {
    const offer = this.offers.get(task.id);
    if (offer) return `offered to worker ${offer.workerId}, waiting for its answer`;
    if (this.recovered.has(task.id)) return 'manager restarted: waiting for workers to reconnect and report what they run';
    if (this.sessions.size === 0) return 'no worker connected';
    return this.sched.explain(task.id) ?? 'queued: placed as soon as the scheduler runs';
  }

  /** view is the task as clients see it: a pending one says why it waits. */
  view(task: Task): Task {
    if (task.state !== TaskState.PENDING) return task;
    const copy = clone(TaskSchema, task);
    copy.pendingReason = this.pendingReason(task);
    return copy;
  }

  /** placeQueued offers what fits now, in priority then submission order, with backfill. */
  placeQueued(): void {
    if (this.recovered.size > 0 && this.clock.value >= this.holdRecoveredUntil) {
      this.log.info({ tasks: this.recovered.size, waitedFor: [...this.awaitingReport] }, 'recovery hold over: placing the pending tasks held since the restart');
      for (const id of this.recovered) {
        const task = this.tasks.get(id);
        if (task?.state === TaskState.PENDING && !this.offers.has(id)) this.enqueue(task);
      }
      this.recovered.clear();
    }
    if (this.sessions.size === 0 || this.sched.queued() === 0) return;
    for (const p of this.sched.schedule()) {
      const task = this.tasks.get(p.taskId);
      if (task?.state !== TaskState.PENDING) {
        this.sched.remove(p.taskId);
        continue;
      }
      this.offer(task, p.workerId);
    }
  }

  private offer(task: Task, workerId: string): void {
    task.attempt += 1;
    task.workerId = workerId;
    this.log.debug({ task: task.id, attempt: task.attempt, worker: workerId }, 'offer');
    const offer: Offer = { taskId: task.id, attempt: task.attempt, workerId, deadline: this.clock.value + this.opts.ackTimeoutMs, withdrawn: false };
    this.offers.set(task.id, offer);
    this.offerDeadlines.push(offer);
    this.stats.offers++;
    this.assign(workerId, task.id);
    this.persistLater(task);
    this.sendTo(workerId, {
      case: 'startTask',
      value: { taskId: task.id, attempt: task.attempt, spec: task.spec },
    });
  }

  /** retryOffer takes an unanswered or refused offer back and tries the next worker. */
  private retryOffer(taskId: string, workerId: string, why: string, deadReason: string, exclude = true): void {
    const task = this.tasks.get(taskId);
    this.offers.delete(taskId);
    this.unassign(workerId, taskId);
    if (!task || task.state !== TaskState.PENDING) {
      this.sched.release(taskId);
      return;
    }
    this.log.info({ task: taskId, worker: workerId, attempt: task.attempt, why }, 'offer taken back; placing the task again');
    // Its schedule timeout passed while this offer was out: nothing else may place it now.
    const timeout = task.spec?.scheduleTimeoutMs ?? 0;
    if (timeout > 0 && this.now() >= Number(task.createdUnixMs) + timeout) {
      this.sched.release(taskId);
      void this.kill(task, 'schedule-timeout');
      return;
    }
    // Refused or ignored: do not offer it to this worker again.
    this.sched.release(taskId);
    if (exclude) this.sched.exclude(taskId, workerId);
    task.error = why;
    task.workerId = '';
    this.enqueue(task);
    // Every worker that could run it, connected or not, has refused or ignored it: nothing left to wait for.
    if (this.sched.unplaceable(taskId) === 'excluded' || this.refusedByAll(task)) void this.kill(task, deadReason);
    else this.placeSoon();
  }

  /** refusedByAll: every known worker big enough and labelled for the task is excluded from it (O(workers): only on a retry). */
  private refusedByAll(task: Task): boolean {
    const excluded = this.sched.excludedFrom(task.id);
    if (excluded.size === 0) return false;
    const need = this.resourcesOf(task);
    const constraints = constraintList(task.spec?.constraints ?? {});
    for (const w of this.workers.values()) {
      const capacity = { millicpu: Number(w.capacity?.millicpu ?? 0n), memoryBytes: Number(w.capacity?.memoryBytes ?? 0n) };
      if (!excluded.has(w.id) && holds(capacity, need) && missingLabel(w.labels, constraints) === undefined) return false;
    }
    return true;
  }

  private markScheduled(task: Task): void {
    task.state = TaskState.SCHEDULED;
    task.scheduledUnixMs = BigInt(this.now());
    this.assign(task.workerId, task.id);
    if (this.sched.allocation(task.id)?.workerId !== task.workerId) this.sched.allocate(task.id, task.workerId, this.resourcesOf(task));
    this.persistLater(task);
  }

  /** Started before Accepted arrived (messages are ordered, so only after a restart). */
  private acceptImplicitly(task: Task): void {
    this.offers.delete(task.id);
    this.recovered.delete(task.id);
    this.markScheduled(task);
  }

  /**
   * lose handles a task whose worker is gone: placed again with a new attempt (so a late report
   * from the old one is ignored and a reconnecting worker is told to kill it) while retries
   * remain, else dead.
   */
  private lose(task: Task, reason: string): void {
    // A task being cancelled is not placed again: it ends as cancelled.
    const cancelled = this.cancelling.delete(task.id);
    if (cancelled || task.retriesUsed >= (task.spec?.retries ?? 0)) {
      void this.kill(task, cancelled ? `cancelled (${reason})` : reason);
      return;
    }
    this.unassign(task.workerId, task.id);
    task.retriesUsed += 1;
    this.stats.retried++;
    task.state = TaskState.PENDING;
    task.error = `${reason} (attempt ${task.attempt}); retry ${task.retriesUsed} of ${task.spec?.retries ?? 0}`;
    task.workerId = '';
    task.pid = 0;
    this.log.info({ task: task.id, reason, retry: task.retriesUsed }, 'task placed again');
    void this.persistTask(task).catch(() => undefined);
    this.sched.release(task.id);
    this.enqueue(task);
    this.placeSoon();
  }

  private kill(task: Task, reason: string): Promise<void> {
    this.offers.delete(task.id);
    this.forget(task.id);
    this.cancelling.delete(task.id);
    if (task.workerId) this.unassign(task.workerId, task.id);
    task.state = TaskState.DEAD;
    task.deadReason = reason;
    task.finishedUnixMs = BigInt(this.now());
    this.countEnd(task);
    this.log.info({ task: task.id, reason }, 'task dead');
    const stored = this.persistTask(task);
    stored.catch(() => undefined);
    return stored;
  }

  /**
   * currentAttempt returns the task if (workerId, attempt) is its current attempt. A recovered
   * pending task not offered since the restart also adopts a report of the same or a newer
   * attempt: the worker accepted it before the crash, but the write of the offer or the
   * acceptance never landed. Adopting it is what keeps the task from running twice.
   */
  private currentAttempt(workerId: string, ta: TaskAttempt): Task | undefined {
    const task = this.tasks.get(ta.taskId);
    if (!task) return undefined;
    if (task.workerId === workerId && task.attempt === ta.attempt) return task;
    // Only a worker the store knew, for a task held since the restart, with a newer attempt than stored.
    if (task.state === TaskState.PENDING && this.recovered.has(task.id) && !this.offers.has(task.id) && ta.attempt > task.attempt && this.loadedWorkers.has(workerId)) {
      this.sched.remove(task.id);
      this.recovered.delete(task.id);
      task.workerId = workerId;
      task.attempt = ta.attempt;
      return task;
    }
    return undefined;
  }


  private assign(workerId: string, taskId: string): void {
    let set = this.assigned.get(workerId);
    if (!set) this.assigned.set(workerId, (set = new Set()));
    set.add(taskId);
    const w = this.workers.get(workerId);
    if (w) w.runningTasks = set.size;
  }

  private unassign(workerId: string, taskId: string): void {
    const set = this.assigned.get(workerId);
    set?.delete(taskId);
    const w = this.workers.get(workerId);
    if (w) w.runningTasks = set?.size ?? 0;
  }

  private refreshLoad(worker: Worker): void {
    worker.runningTasks = this.assigned.get(worker.id)?.size ?? 0;
  }

  private sendTo(workerId: string, msg: WorkerMessage): void {
    this.sessions.get(workerId)?.link.send(msg);
  }

  // ---- timers -----------------------------------------------------------

  /**
   * tick runs from one interval timer: ack deadlines, pings, missed pongs, failed writes.
   * utilization is the event loop's busy share since the last tick (see fair-clock.ts).
   */
  tick(utilization = 0): void {
    const now = this.now();
    this.clock.calibrate(utilization);
    const clock = this.clock.value;
    while (this.offerDeadlines.length > 0 && this.offerDeadlines[0]!.deadline <= clock) {
      const offer = this.offerDeadlines.shift()!;
      if (this.offers.get(offer.taskId) !== offer) continue;
      if (offer.withdrawn) {
        // Neither an answer nor a confirmation of the withdrawal: the stream is of no use; once the
        // worker is gone past its grace, the task goes elsewhere.
        const session = this.sessions.get(offer.workerId);
        if (session) {
          session.link.close('no answer to an offer or its withdrawal');
          this.disconnect(session.link, offer.workerId, `no answer to the offer of task ${offer.taskId} or its withdrawal`);
        }
        continue;
      }
      this.log.warn({ task: offer.taskId, worker: offer.workerId }, 'no answer to offer within the ack timeout: withdrawing it');
      this.stats.ackTimeouts++;
      offer.withdrawn = true;
      offer.deadline = clock + this.opts.ackTimeoutMs;
      this.offerDeadlines.push(offer);
      this.sendCancel(offer.workerId, offer.taskId, offer.attempt, 'offer withdrawn (ack timeout)');
    }
    if (!this.scheduleDeadlinesSorted) {
      this.scheduleDeadlines.sort((a, b) => a.at - b.at);
      this.scheduleDeadlinesSorted = true;
    }
    while (this.scheduleDeadlines.length > 0 && this.scheduleDeadlines[0]!.at <= now) {
      const { taskId } = this.scheduleDeadlines.shift()!;
      const task = this.tasks.get(taskId);
      // An offer in flight may still be accepted; only a task nobody holds times out.
      if (task && task.state === TaskState.PENDING && !this.offers.has(taskId)) {
        void this.kill(task, 'schedule-timeout');
      }
    }
    for (const [workerId, end] of this.graceEnds) {
      if (clock < end) continue;
      this.graceEnds.delete(workerId);
      if (this.sessions.has(workerId)) continue;
      // Gone past its grace: its orphan timeout has killed what it ran, so nothing of it is live.
      for (const taskId of [...(this.assigned.get(workerId) ?? [])]) {
        const task = this.tasks.get(taskId);
        if (task && task.state === TaskState.SCHEDULED && task.workerId === workerId) this.lose(task, 'worker-lost');
        const offer = this.offers.get(taskId);
        if (offer?.workerId === workerId) this.retryOffer(taskId, workerId, `worker ${workerId} went away with the offer`, 'ack-timeout');
      }
    }
    const silentAfter = this.opts.pingIntervalMs * this.opts.missedPings;
    for (const session of [...this.sessions.values()]) {
      const probeFailed = session.probeSince !== undefined && clock - session.probeSince > Math.max(2 * this.opts.pingIntervalMs, 1000);
      if (clock - session.lastPongAt > silentAfter || probeFailed) {
        const why = probeFailed ? 'another connection claims its id and it did not answer a ping' : `no pong for ${clock - session.lastPongAt}ms`;
        session.link.close(probeFailed ? 'did not answer a ping' : `missed ${this.opts.missedPings} pings`);
        this.disconnect(session.link, session.workerId, why);
        continue;
      }
      if (clock >= session.nextPingAt) {
        session.nextPingAt = clock + this.opts.pingIntervalMs;
        session.pingSeq += 1n;
        session.link.send({ case: 'ping', value: { seq: session.pingSeq } });
      }
    }
    this.flushDeferred();
    for (const id of [...this.dirtyTasks]) {
      const t = this.tasks.get(id);
      this.dirtyTasks.delete(id);
      if (t) void this.persistTask(t).catch(() => undefined);
    }
    for (const key of [...this.dirtyDeletes]) {
      this.dirtyDeletes.delete(key);
      this.deleteKey(key);
    }
    if (now >= this.nextRetentionSweep) {
      this.nextRetentionSweep = now + RETENTION_SWEEP_MS;
      this.sweepFinished(now);
      this.sweepWorkers(now);
    }
    for (const id of [...this.dirtyWorkers]) {
      const w = this.workers.get(id);
      this.dirtyWorkers.delete(id);
      if (w) void this.persistWorker(w).catch(() => undefined);
    }
    this.placeQueued();
  }

  /**
   * sweepFinished deletes done/dead tasks past the retention period, and the oldest finished
   * ones beyond max_finished_tasks, at most SWEEP_BATCH per sweep so the store sees small txns.
   */
  sweepFinished(now: number): number {
    const cutoff = BigInt(now - (this.opts.retentionMs ?? DEFAULT_RETENTION_MS));
    let finished = 0;
    for (const t of this.tasks.values()) if (isTerminal(t)) finished++;
    let excess = finished - (this.opts.maxFinishedTasks ?? DEFAULT_MAX_FINISHED);
    let deleted = 0;
    const expired = (t: Task): boolean => isTerminal(t) && (excess > 0 || t.finishedUnixMs <= cutoff);
    const remove = (t: Task): void => {
      this.tasks.delete(t.id);
      this.listeners.delete(t.id);
      this.deleteKey(taskKey(t.id));
      excess--;
      deleted++;
    };
    const keysSeen = new Set<string>();
    // Ids are time-ordered, so this walks the oldest submissions first.
    for (const t of this.tasks.values()) {
      if (deleted >= SWEEP_BATCH) break;
      if (!expired(t)) continue;
      if (!t.idempotencyKey) {
        remove(t);
        continue;
      }
      // A keyed submission goes as a whole, with its key, so a retry never re-creates part of it.
      if (keysSeen.has(t.idempotencyKey)) continue;
      keysSeen.add(t.idempotencyKey);
      const sub = this.submissions.get(t.idempotencyKey);
      const members = sub ? sub.ids.flatMap((id) => this.tasks.get(id ?? '') ?? []) : [t];
      if (!members.every(expired)) continue;
      members.forEach(remove);
      this.submissions.delete(t.idempotencyKey);
    }
    if (deleted > 0) this.log.info({ deleted }, 'removed finished tasks past retention');
    return deleted;
  }

  /**
   * sweepWorkers forgets workers gone longer than the retention period with nothing assigned,
   * so a fleet that churns through ids does not grow the store forever.
   */
  sweepWorkers(now: number): number {
    const cutoff = BigInt(now - (this.opts.retentionMs ?? DEFAULT_RETENTION_MS));
    let removed = 0;
    for (const w of this.workers.values()) {
      if (this.sessions.has(w.id) || (this.assigned.get(w.id)?.size ?? 0) > 0 || w.lastSeenUnixMs > cutoff || this.graceEnds.has(w.id)) continue;
      this.workers.delete(w.id);
      this.assigned.delete(w.id);
      this.sched.forgetWorker(w.id);
      if (w.certificateName && this.certificates.get(w.certificateName) === w.id) this.certificates.delete(w.certificateName);
      this.deleteKey(workerKey(w.id));
      removed++;
    }
    if (removed > 0) this.log.info({ removed }, 'removed workers gone past retention');
    return removed;
  }

  private deleteKey(key: string): void {
    this.committer.write(key, null).catch(() => this.dirtyDeletes.add(key));
  }

  /** closeAll ends every worker stream (shutdown), after handing deferred changes to the store. */
  closeAll(reason: string): void {
    this.flushDeferred();
    for (const s of this.sessions.values()) s.link.close(reason);
    this.sessions.clear();
  }

  // ---- persistence --------------------------------------------------------

  /**
   * persistLater marks a change nobody waits for (offered, scheduled, started) to be written on
   * the next tick, or with the next immediate write of the task, whichever comes first. A short
   * task then costs two commits (pending, done) instead of four. Readers still see only what is
   * stored: committed() waits for the deferred write too.
   */
  private persistLater(task: Task): void {
    if (this.deferred.has(task.id)) return;
    this.deferred.add(task.id);
    this.flight(task.id).writes++;
  }

  private flight(id: string): { writes: number; waiters: Array<() => void> } {
    let flight = this.inflight.get(id);
    if (!flight) this.inflight.set(id, (flight = { writes: 0, waiters: [] }));
    return flight;
  }

  /** flushDeferred writes the changes persistLater held back. */
  private flushDeferred(): void {
    for (const id of [...this.deferred]) {
      const task = this.tasks.get(id);
      if (task) {
        void this.persistTask(task).catch(() => undefined);
        continue;
      }
      // Gone meanwhile (withdrawn, removed): nothing to write, nobody to keep waiting.
      this.deferred.delete(id);
      this.landed(id, 1);
    }
  }

  private landed(id: string, writes: number): void {
    const flight = this.inflight.get(id);
    if (!flight) return;
    flight.writes -= writes;
    if (flight.writes > 0) return;
    this.inflight.delete(id);
    for (const wake of flight.waiters) wake();
  }

  private persistTask(task: Task): Promise<void> {
    const listeners = this.listeners.get(task.id);
    const snapshot = listeners ? clone(TaskSchema, task) : undefined;
    // This write carries a deferred change too, if one is waiting.
    const writes = this.deferred.delete(task.id) ? 1 : 0;
    this.flight(task.id).writes++;
    const landed = (): void => this.landed(task.id, 1 + writes);
    return this.committer.write(taskKey(task.id), encodeTask(task)).then(
      () => {
        if (snapshot) for (const l of this.listeners.get(task.id) ?? []) l(snapshot);
        if (this.unstored.delete(task.id)) this.admit(task);
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
    void this.persistTask(task).catch(() => undefined);
  }

  /**
   * committed resolves with the task (as clients see it) once none of its writes is in flight,
   * so what a client is told is what the store holds; UNAVAILABLE while its last write failed.
   */
  async committed(id: string): Promise<Task> {
    for (let round = 0; round < MAX_COMMIT_WAITS; round++) {
      const flight = this.inflight.get(id);
      if (!flight) break;
      await new Promise<void>((resolve) => flight.waiters.push(resolve));
    }
    const task = this.getTask(id);
    if (this.dirtyTasks.has(id)) throw new StoreUnavailableError(`the latest change of task ${id} is not stored yet (the manager keeps retrying)`);
    return this.view(task);
  }

  private persistWorker(worker: Worker): Promise<void> {
    return this.committer.write(workerKey(worker.id), encodeWorker(worker)).catch((err: unknown) => {
      this.dirtyWorkers.add(worker.id);
      throw err;
    });
  }

  private countEnd(task: Task): void {
    if (task.state === TaskState.DONE) this.stats.done++;
    else {
      const reason = task.deadReason.split(':')[0]!;
      this.stats.dead.set(reason, (this.stats.dead.get(reason) ?? 0) + 1);
    }
  }

  /** Real time the deadline clock did not count because the manager was stalled or saturated (metrics). */
  get stalledMs(): number {
    return this.clock.stalledMs;
  }

  /** Gauges for metrics: tasks waiting in the placement queue and offers awaiting an answer. */
  queueDepth(): { queued: number; offered: number; held: number } {
    return { queued: this.sched.queued(), offered: this.offers.size, held: this.recovered.size };
  }

  counts(): { workersConnected: number; workersTotal: number; tasksByState: Record<string, number> } {
    const tasksByState: Record<string, number> = { pending: 0, scheduled: 0, done: 0, dead: 0 };
    for (const t of this.tasks.values()) {
      const name = TaskState[t.state].toLowerCase();
      tasksByState[name] = (tasksByState[name] ?? 0) + 1;
    }
    return { workersConnected: this.sessions.size, workersTotal: this.workers.size, tasksByState };
  }
}
