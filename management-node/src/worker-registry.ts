// The worker registry: every worker the manager knows, its live stream (session)
// and its liveness, like Nomad's heartbeat.go: Hello checks and certificate
// bindings, pings and missed pongs, the probe of a session whose id another
// stream claims, the reconnect grace after a worker goes, and the tasks offered
// to or running on each worker (its load). What a worker's coming and going means
// for its tasks is attempts.ts's part.
import { withUserLabels } from '../../common/run-user.js';
import { clone, create, type MessageInitShape } from '@bufbuild/protobuf';
import { ResourcesSchema, WorkerSchema, WorkerState, type Worker } from '../../proto/gen/schedapi/v1/types_pb.js';
import type { ConnectResponseSchema, Hello, Pong } from '../../proto/gen/schedapi/v1/worker_pb.js';
import { AlreadyExistsError, FailedPreconditionError, NotFoundError, PermissionDeniedError, UnauthenticatedError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { FairClock } from './fair-clock.js';
import type { Journal } from './journal.js';
import type { WorkerChannel } from './log-relay.js';
import type { Scheduler, WorkerInfo } from './scheduler/scheduler.js';
import { orphanTimeoutMs } from './task-rules.js';
import { checkHello as checkHelloFields } from './worker-input.js';
import { nameFromHost, WorkerNames } from './worker-names.js';

/** One manager→worker message: the oneof of ConnectResponse. */
export type WorkerMessage = NonNullable<MessageInitShape<typeof ConnectResponseSchema>['msg']>;

/** A live worker stream, as the manager sees it. */
export interface WorkerLink {
  readonly sessionId: string;
  readonly address: string;
  send(msg: WorkerMessage): void;
  close(reason: string): void;
}

export interface Session {
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

export interface RegistryOptions {
  pingIntervalMs: number;
  missedPings: number;
  /** How long the tasks of a disconnected worker wait for it to come back before they are lost. */
  reconnectGraceMs: number;
  joinToken?: string | undefined;
}

export class WorkerRegistry {
  private readonly sessions = new Map<string, Session>();
  /** Disconnected workers with scheduled tasks: when their reconnect grace ends. */
  private readonly graceEnds = new Map<string, number>();
  /** Under mutual TLS: which worker id each certificate name is bound to. */
  private readonly certificates = new Map<string, string>();
  /** Offered or running task ids per worker: the load the scheduler sees. */
  private readonly assigned = new Map<string, Set<string>>();
  /** The names of connected workers, unique among them. */
  private readonly names = new WorkerNames();

  /** workers is every worker record by id; gone is told of each worker whose stream ended. */
  constructor(
    private readonly opts: RegistryOptions,
    readonly workers: Map<string, Worker>,
    private readonly sched: Scheduler,
    private readonly journal: Journal,
    private readonly clock: FairClock,
    private readonly now: () => number,
    private readonly log: Logger,
    private readonly gone: (workerId: string) => void,
  ) {}

  /** How many workers have a live stream. */
  get connected(): number {
    return this.sessions.size;
  }

  session(workerId: string): Session | undefined {
    return this.sessions.get(workerId);
  }

  send(workerId: string, msg: WorkerMessage): void {
    this.sessions.get(workerId)?.link.send(msg);
  }

  /** The log relay's way to the workers' streams (log-relay.ts): false when the worker has none. */
  logChannel(): WorkerChannel {
    return {
      readLogs: (workerId, requestId, r) => {
        const session = this.sessions.get(workerId);
        if (!session) return false;
        session.link.send({
          case: 'readLogs',
          value: { requestId, task: { taskId: r.taskId, attempt: r.attempt }, stderr: r.stderr, tailLines: r.tailLines, follow: r.follow },
        });
        return true;
      },
      stopLogs: (workerId, requestId) => this.send(workerId, { case: 'stopLogs', value: { requestId } }),
    };
  }

  getWorker(id: string): Worker {
    const worker = this.workers.get(id);
    if (!worker) throw new NotFoundError('worker', id);
    return worker;
  }

  /** workerView is the worker as clients see it, with what is allocated on it now. */
  workerView(w: Worker): Worker {
    const used = this.sched.used(w.id);
    const copy = clone(WorkerSchema, w);
    copy.allocated = create(ResourcesSchema, { millicpu: BigInt(used?.millicpu ?? 0), memoryBytes: BigInt(used?.memoryBytes ?? 0) });
    return copy;
  }

  /** load puts a worker read from the store back after a restart: no stream survives, so it must dial in again. */
  load(w: Worker): void {
    if (w.certificateName) this.certificates.set(w.certificateName, w.id);
    if (w.state === WorkerState.CONNECTED) {
      w.state = WorkerState.DISCONNECTED;
      void this.journal.writeWorker(w).catch(() => undefined);
    }
    this.workers.set(w.id, w);
    this.graceEnds.set(w.id, this.clock.advance() + this.opts.reconnectGraceMs);
    // Known but offline: counted in placement summaries, offered nothing until it dials in.
    this.sched.upsertWorker(workerInfo(w));
    this.sched.removeWorker(w.id);
  }

  /** leaving: a worker shutting down gracefully takes nothing new while its tasks finish. */
  leaving(workerId: string, reason: string): void {
    const worker = this.workers.get(workerId);
    if (!worker || !this.sessions.has(workerId)) return;
    worker.leaving = true;
    this.sched.setDraining(workerId, true);
    this.log.info({ worker: workerId, reason }, 'worker leaving');
    void this.journal.writeWorker(worker).catch(() => undefined);
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

  /** The Welcome a worker gets: how often it is pinged, and how long it keeps tasks without the manager. */
  welcomeFor(sessionId: string): { sessionId: string; pingIntervalMs: number; orphanTimeoutMs: number } {
    return { sessionId, pingIntervalMs: this.opts.pingIntervalMs, orphanTimeoutMs: orphanTimeoutMs(this.opts.reconnectGraceMs) };
  }

  /**
   * open registers a worker's new stream, after checkHello and Welcome. The caller then squares
   * what the Hello lists as running with its tasks (attempts.ts) and calls opened.
   */
  open(link: WorkerLink, hello: Hello, certificateName?: string): Session {
    const now = this.now();
    const known = this.workers.get(hello.workerId);
    const certificate = certificateName ?? known?.certificateName ?? '';
    if (certificate) this.certificates.set(certificate, hello.workerId);
    const wanted = hello.name || nameFromHost(hello.hardware?.hostname ?? '');
    const name = this.names.claim(hello.workerId, wanted, known?.name ?? '');
    if (name !== wanted) this.log.info({ worker: hello.workerId, wanted, name }, 'worker name taken by another connected worker: renamed');
    const worker = create(WorkerSchema, {
      id: hello.workerId,
      name,
      address: link.address,
      state: WorkerState.CONNECTED,
      labels: hello.labels,
      version: hello.version,
      connectedUnixMs: BigInt(now),
      lastSeenUnixMs: BigInt(now),
      draining: known?.draining ?? false,
      drainDeadlineUnixMs: known?.drainDeadlineUnixMs ?? 0n,
      certificateName: certificate,
      ...(hello.capacity ? { capacity: hello.capacity } : {}),
      ...(hello.hardware ? { hardware: hello.hardware } : {}),
      ...(hello.isolation ? { isolation: hello.isolation } : {}),
    });
    this.workers.set(worker.id, worker);
    const at = this.clock.advance();
    const session: Session = { link, workerId: worker.id, lastPongAt: at, nextPingAt: at + this.opts.pingIntervalMs, pingSeq: 0n };
    this.sessions.set(worker.id, session);
    this.graceEnds.delete(worker.id);
    this.sched.upsertWorker(workerInfo(worker));
    return session;
  }

  /** opened finishes open: the worker's load is counted and its record stored. */
  opened(session: Session, hello: Hello): void {
    const worker = this.workers.get(session.workerId)!;
    this.log.debug({ worker: worker.id, running: hello.running.map((ta) => `${ta.taskId}.${ta.attempt}`) }, 'hello');
    worker.runningTasks = this.assigned.get(worker.id)?.size ?? 0;
    this.log.info({ worker: worker.id, address: session.link.address, running: hello.running.length }, 'worker connected');
    void this.journal.writeWorker(worker).catch(() => undefined);
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
    this.names.release(workerId, worker.name);
    this.sched.removeWorker(workerId);
    this.gone(workerId);
    this.log.warn({ worker: workerId, reason }, 'worker disconnected');
    void this.journal.writeWorker(worker).catch(() => undefined);
    // Counted from now, when the manager stops sending: the worker has heard nothing since, so its
    // orphan timeout (shorter) kills what it runs before the grace ends here.
    this.graceEnds.set(workerId, this.clock.advance() + (graceful ? 0 : this.opts.reconnectGraceMs));
    // Offers stay with it: it may have accepted and run them, and says so when it reconnects.
  }

  /** drop closes a worker's stream that is of no use any more, and marks the worker gone. */
  drop(workerId: string, closeReason: string, why: string): void {
    const session = this.sessions.get(workerId);
    if (!session) return;
    session.link.close(closeReason);
    this.disconnect(session.link, workerId, why);
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

  /**
   * pong records a worker's live load. Returns its session if this is its first Pong since
   * Hello: the worker has listed what it runs and resent the results it kept.
   */
  pong(workerId: string, stats?: Pong): Session | undefined {
    this.seen(workerId);
    const session = this.sessions.get(workerId);
    const worker = this.workers.get(workerId);
    if (session && worker && stats) {
      worker.loadAvg = [stats.load1, stats.load5, stats.load15];
      worker.memoryFreeBytes = stats.memoryFreeBytes;
      this.sched.upsertWorker(workerInfo(worker, stats));
    }
    if (!session || session.reported) return undefined;
    session.reported = true;
    return session;
  }

  /**
   * checkLiveness (on the tick) drops the sessions that missed their pongs or failed the probe of
   * their id, and pings the others when their interval has passed.
   */
  checkLiveness(clock: number): void {
    const silentAfter = this.opts.pingIntervalMs * this.opts.missedPings;
    for (const session of [...this.sessions.values()]) {
      const probeFailed = session.probeSince !== undefined && clock - session.probeSince > Math.max(2 * this.opts.pingIntervalMs, 1000);
      if (clock - session.lastPongAt > silentAfter || probeFailed) {
        const why = probeFailed ? 'another connection claims its id and it did not answer a ping' : `no pong for ${clock - session.lastPongAt}ms`;
        this.drop(session.workerId, probeFailed ? 'did not answer a ping' : `missed ${this.opts.missedPings} pings`, why);
        continue;
      }
      if (clock >= session.nextPingAt) {
        session.nextPingAt = clock + this.opts.pingIntervalMs;
        session.pingSeq += 1n;
        session.link.send({ case: 'ping', value: { seq: session.pingSeq } });
      }
    }
  }

  /** graceEnded (on the tick) lists the workers gone past their reconnect grace: nothing of theirs is live. */
  graceEnded(clock: number): string[] {
    const ended: string[] = [];
    for (const [workerId, end] of this.graceEnds) {
      if (clock < end) continue;
      this.graceEnds.delete(workerId);
      if (!this.sessions.has(workerId)) ended.push(workerId);
    }
    return ended;
  }

  /** assign counts a task offered to or running on a worker. */
  assign(workerId: string, taskId: string): void {
    let set = this.assigned.get(workerId);
    if (!set) this.assigned.set(workerId, (set = new Set()));
    set.add(taskId);
    const w = this.workers.get(workerId);
    if (w) w.runningTasks = set.size;
  }

  unassign(workerId: string, taskId: string): void {
    const set = this.assigned.get(workerId);
    set?.delete(taskId);
    const w = this.workers.get(workerId);
    if (w) w.runningTasks = set?.size ?? 0;
  }

  /** assignedTo lists the tasks offered to or running on a worker. */
  assignedTo(workerId: string): string[] {
    return [...(this.assigned.get(workerId) ?? [])];
  }

  /** inUse: the worker is connected, has tasks, or is within its grace: retention keeps it. */
  inUse(workerId: string): boolean {
    return this.sessions.has(workerId) || (this.assigned.get(workerId)?.size ?? 0) > 0 || this.graceEnds.has(workerId);
  }

  /**
   * remove forgets a worker that left for good (RemoveWorker) and returns it as it was. Refused
   * while it is connected, or while tasks are still placed on it: within its reconnect grace it may
   * come back to them; after it, they are placed again or ended, and it can go.
   */
  remove(workerId: string): Worker {
    const worker = this.getWorker(workerId);
    const label = worker.name && worker.name !== workerId ? `worker ${workerId} (${worker.name})` : `worker ${workerId}`;
    if (this.sessions.has(workerId)) throw new FailedPreconditionError(`${label} is connected: stop it first (drain it to let its tasks finish)`);
    const tasks = this.assigned.get(workerId)?.size ?? 0;
    if (tasks > 0 && this.graceEnds.has(workerId)) {
      throw new FailedPreconditionError(`${label} is within its reconnect grace with ${tasks} task(s) placed on it; once the grace ends they are placed again (or end) and it can be removed`);
    }
    if (tasks > 0) throw new FailedPreconditionError(`${label} still has ${tasks} task(s) placed on it`);
    const view = this.workerView(worker);
    this.graceEnds.delete(workerId);
    this.forget(workerId);
    this.log.info({ worker: workerId, name: worker.name }, 'worker removed');
    return view;
  }

  /** forget removes a worker nothing refers to any more (retention), with its certificate binding. */
  forget(workerId: string): void {
    const w = this.workers.get(workerId);
    this.workers.delete(workerId);
    this.assigned.delete(workerId);
    this.sched.forgetWorker(workerId);
    if (w?.certificateName && this.certificates.get(w.certificateName) === workerId) this.certificates.delete(w.certificateName);
  }

  /** closeAll ends every worker stream (shutdown). */
  closeAll(reason: string): void {
    for (const s of this.sessions.values()) s.link.close(reason);
    this.sessions.clear();
  }
}

/** workerInfo is a worker as the placement core sees it: capacity, labels, whether it takes tasks, live load. */
function workerInfo(w: Worker, stats?: Pong): WorkerInfo {
  return {
    id: w.id,
    capacity: { millicpu: Number(w.capacity?.millicpu ?? 0n), memoryBytes: Number(w.capacity?.memoryBytes ?? 0n) },
    labels: withUserLabels(w.labels, w.isolation?.runAs ?? '', w.isolation?.allowedUsers ?? []),
    draining: w.draining || w.leaving,
    load1: stats?.load1,
    memoryFreeBytes: stats?.memoryFreeBytes ? Number(stats.memoryFreeBytes) : undefined,
  };
}
