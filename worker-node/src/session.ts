// The worker's one dial-out stream to the manager (WorkerService.Connect).
// With several managers it dials one at a time, goes to the leader a refusal
// names and otherwise round robin (manager-list.ts).
// It survives manager restarts: it redials forever, reports what still runs
// in Hello, and keeps every result in the on-disk outbox until the manager
// acknowledges it, so results outlive a worker restart too. Cut off for longer
// than the manager's orphan timeout, it kills its tasks (orphan-timer.ts).
import * as grpc from '@grpc/grpc-js';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import type { GenService } from '@bufbuild/protobuf/codegenv2';
import { isNotLeader, leaderHint } from '../../common/errors.js';
import { createServiceClient, type ServiceClient } from '../../common/grpc-service.js';
import type { Logger } from '../../common/logger.js';
import { VERSION } from '../../common/version.js';
import {
  ConnectRequestSchema,
  WorkerService,
  type CancelTask,
  type ConnectRequest,
  type ConnectResponse,
  type StartTask,
  type Welcome,
} from '../../proto/gen/schedapi/v1/worker_pb.js';
import { type Executor, type FinishedEvent, type StartedEvent } from './executor.js';
import { DelayedStarts } from './delayed-starts.js';
import { LogReads } from './log-reads.js';
import { ClientPool, describeStatus, ManagerList, redialDelay, type NextDial } from './manager-list.js';
import { liveLoad, overCapacity, type LiveLoad, type NodeInfo } from './node-info.js';
import { OrphanTimer } from './orphan-timer.js';
import { notStarted, StartPacer } from './start-pacer.js';
import { execSpecOf } from './start-spec.js';
import { toFinished, type Outbox } from './outbox.js';

type WorkerMethods = typeof WorkerService extends GenService<infer T> ? T : never;
type Stream = grpc.ClientDuplexStream<ConnectRequest, ConnectResponse>;
type Outgoing = NonNullable<MessageInitShape<typeof ConnectRequestSchema>['msg']>;

export { overCapacity, redialDelay };

export interface SessionOptions {
  /** The managers' addresses (host:port), dialled one at a time; the first goes first. */
  managers: readonly string[];
  token: string;
  workerId: string;
  node: NodeInfo;
  executor: Executor;
  /** Unacknowledged results, including those a previous run of this worker left. */
  outbox: Outbox;
  logger: Logger;
  /** First redial delay; it doubles (with jitter) after each failure up to reconnectMaxMs. */
  reconnectIntervalMs: number;
  reconnectMaxMs?: number;
  cancelGraceMs: number;
  credentials?: grpc.ChannelCredentials;
  /** Load and free memory for each Pong; defaults to this machine's (os.loadavg, os.freemem). */
  load?: () => LiveLoad;
  /** How long Started waits for a Finished that makes it moot (DelayedStarts). */
  startedDelayMs?: number;
  /** The backoff pause before a redial; defaults to redialDelay (tests record it). */
  redialDelay?: (failures: number, baseMs: number, maxMs: number) => number;
}

/** How long a fresh stream may wait for Welcome before it is given up and redialled. */
const WELCOME_TIMEOUT_MS = 10_000;
/** A manager silent for this many ping intervals (and at least the floor) is presumed gone: a half-open TCP connection never errors on its own. */
const SILENT_PINGS = 5;
const SILENT_FLOOR_MS = 5_000;
const GOODBYE_TIMEOUT_MS = 2_000;

export class Session {
  private readonly o: SessionOptions;
  private readonly list: ManagerList;
  private readonly clients: ClientPool<ServiceClient<WorkerMethods>>;
  private stream: Stream | undefined;
  private welcomed = false;
  private stopping = false;
  private redialTimer: NodeJS.Timeout | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  /** The last warning per address in this outage: each is warned once, later repeats go to debug. */
  private readonly warned = new Map<string, string>();
  /** Backoff pauses since the last Welcome: the backoff exponent. */
  private failures = 0;
  /** Set by leave(): no new tasks, and the manager is told after every (re)connect. */
  private leaving: { reason: string; deadlineUnixMs: number } | undefined;
  /** ReadLogs answers in flight; aborted with their stream. */
  private readonly logReads: LogReads;
  private readonly starts: DelayedStarts;
  private readonly pacer = new StartPacer();
  private readonly orphan = new OrphanTimer({ onOrphaned: (silentMs, timeoutMs) => this.orphaned(silentMs, timeoutMs) });

  constructor(options: SessionOptions) {
    this.o = options;
    this.list = new ManagerList(options.managers);
    const make = (address: string) =>
      createServiceClient(WorkerService, address, options.credentials ?? grpc.credentials.createInsecure(), {
        // grpc-js otherwise backs its channel off for up to two minutes, and every
        // redial in that window fails without trying the network. The redials are
        // paced by redial(); 1 s at most here keeps its orphan-timeout cap real.
        'grpc.initial_reconnect_backoff_ms': Math.min(options.reconnectIntervalMs, 1000),
        'grpc.max_reconnect_backoff_ms': 1000,
      });
    this.clients = new ClientPool(make, this.list.addresses);
    this.logReads = new LogReads(options);
    this.starts = new DelayedStarts((e) => this.sendStarted(e), options.startedDelayMs);
    options.executor.on('started', this.onStarted);
    options.executor.on('finished', this.onFinished);
  }

  /** True between Welcome and the loss of the stream. */
  get connected(): boolean {
    return this.welcomed;
  }

  /** Results kept until the manager sends FinishedAck. */
  get unacknowledged(): number {
    return this.o.outbox.size;
  }

  start(): void {
    this.dial();
  }

  /**
   * leave starts a graceful shutdown: offers are refused from now on and the manager is told
   * (Leaving), so it places nothing here while the running tasks finish and are reported.
   */
  leave(reason: string, deadlineUnixMs: number): void {
    this.leaving = { reason, deadlineUnixMs };
    this.send({ case: 'leaving', value: { reason, deadlineUnixMs: BigInt(deadlineUnixMs) } });
  }

  /** Stops reporting task events: what the executor does from now on (killing leftovers) is not a result. */
  detach(): void {
    this.o.executor.off('started', this.onStarted);
    this.o.executor.off('finished', this.onFinished);
  }

  /** Says Goodbye, closes the stream and every channel. Running tasks are the caller's to stop. */
  async stop(reason: string): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearTimeout(this.redialTimer);
    clearTimeout(this.watchdog);
    this.orphan.clear();
    // Accepted, never started: reported lost (the manager places them again per their retries).
    for (const w of this.pacer.clear()) this.onFinished({ ...notStarted(w, 'SIGKILL', 'worker is shutting down; task never started'), lost: true });
    this.detach();
    this.starts.clear();
    this.logReads.abortAll();
    const stream = this.stream;
    if (stream) {
      if (this.welcomed) stream.write(create(ConnectRequestSchema, { msg: { case: 'goodbye', value: { reason } } }));
      this.welcomed = false;
      stream.end();
      // Wait for the manager to close its side so Goodbye is delivered, but not forever.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          stream.cancel();
          resolve();
        }, GOODBYE_TIMEOUT_MS);
        const done = (): void => {
          clearTimeout(timer);
          resolve();
        };
        stream.once('status', done);
        stream.once('error', done);
      });
      this.stream = undefined;
    }
    this.clients.closeAll();
  }

  private dial(): void {
    this.redialTimer = undefined;
    if (this.stopping) return;
    let stream: Stream;
    try {
      stream = this.clients.get(this.list.current).connect();
    } catch (err) {
      this.o.logger.warn({ err, manager: this.list.current }, 'cannot open a stream to the manager');
      this.redial(this.list.failed());
      return;
    }
    this.stream = stream;
    this.welcomed = false;
    stream.on('data', (m: ConnectResponse) => this.receive(stream, m));
    stream.on('error', (err: Partial<grpc.StatusObject> & Error) => this.lost(stream, describeStatus(err), err));
    stream.on('status', (s: grpc.StatusObject) => this.lost(stream, describeStatus(s), s));
    stream.on('end', () => this.lost(stream, 'stream ended by the manager'));
    stream.on('close', () => this.lost(stream, 'stream closed'));
    const { workerId, token, node, executor } = this.o;
    stream.write(
      create(ConnectRequestSchema, {
        msg: {
          case: 'hello',
          value: {
            workerId,
            token,
            name: node.name,
            capacity: node.capacity,
            labels: node.labels,
            hardware: node.hardware,
            version: VERSION,
            running: [...executor.running(), ...this.pacer.refs()],
            isolation: node.isolation,
          },
        },
      }),
    );
    this.arm(stream, WELCOME_TIMEOUT_MS, 'no Welcome');
  }

  private receive(stream: Stream, m: ConnectResponse): void {
    if (stream !== this.stream) return;
    this.watchdog?.refresh();
    this.orphan.heard();
    try {
      switch (m.msg.case) {
        case 'welcome':
          return this.welcome(stream, m.msg.value);
        case 'ping':
          return this.pong(m.msg.value.seq);
        case 'startTask':
          return this.startTask(m.msg.value);
        case 'cancelTask':
          return this.cancelTask(m.msg.value);
        case 'finishedAck':
          if (m.msg.value.task) this.o.outbox.ack(m.msg.value.task.taskId, m.msg.value.task.attempt);
          return;
        case 'readLogs':
          return this.logReads.start(stream, m.msg.value, () => stream === this.stream);
        case 'stopLogs':
          return this.logReads.stop(m.msg.value.requestId);
        default:
          this.o.logger.debug('ignoring an unknown message from the manager');
      }
    } catch (err) {
      // A bad message must not take the daemon down; the manager will time the task out.
      this.o.logger.error({ err }, 'failed to handle a message from the manager');
    }
  }

  private welcome(stream: Stream, w: Welcome): void {
    this.welcomed = true;
    this.warned.clear();
    this.failures = 0;
    this.list.welcomed();
    this.orphan.welcome(w.orphanTimeoutMs);
    if (this.leaving) this.leave(this.leaving.reason, this.leaving.deadlineUnixMs);
    this.o.logger.info({ workerId: this.o.workerId, manager: this.list.current, session: w.sessionId }, `connected to manager at ${this.list.current}`);
    // Results produced while the manager was away or before this worker restarted;
    // it stores each (task, attempt) once and acknowledges repeats without storing them.
    for (const finished of this.o.outbox.all()) this.send({ case: 'finished', value: finished });
    const silentMs = w.pingIntervalMs > 0 ? Math.max(SILENT_PINGS * w.pingIntervalMs, SILENT_FLOOR_MS) : 0;
    this.arm(stream, silentMs, 'no message from the manager');
  }

  private pong(seq: bigint): void {
    const { load1, load5 = 0, load15 = 0, memoryFreeBytes } = (this.o.load ?? liveLoad)();
    this.send({ case: 'pong', value: { seq, runningTasks: this.o.executor.size + this.pacer.size, load1, load5, load15, memoryFreeBytes } });
  }

  private startTask(st: StartTask): void {
    const task = { taskId: st.taskId, attempt: st.attempt };
    const reject = (reason: string): void => {
      this.o.logger.info({ task: st.taskId, attempt: st.attempt, reason }, 'rejected task');
      this.send({ case: 'rejected', value: { task, reason } });
    };
    if (this.stopping || this.leaving) return reject('worker is shutting down');
    const spec = execSpecOf(st);
    if ('invalid' in spec) return reject(spec.invalid);
    const badUser = this.o.executor.userProblem(spec.user ?? '');
    if (badUser) return reject(badUser);
    // A repeated offer (the manager missed our answer) is answered again, never run twice.
    const done = this.o.outbox.get(task.taskId, task.attempt);
    if (done) {
      this.send({ case: 'accepted', value: { task } });
      this.send({ case: 'finished', value: done });
      return;
    }
    const waiting = this.pacer.find(st.taskId);
    if (waiting) {
      if (waiting.attempt !== st.attempt) return reject(`attempt ${waiting.attempt} of this task waits to start here`);
      return void this.send({ case: 'accepted', value: { task } });
    }
    const current = this.o.executor.get(st.taskId);
    if (current && current.attempt !== st.attempt) return reject(`attempt ${current.attempt} of this task still runs here`);
    const { millicpu, memoryBytes } = spec;
    if (!current) {
      // The manager's view of this worker may be stale (a restart, a changed capacity): the worker has the last word.
      const over = overCapacity(this.pacer.reserved(this.o.executor.reserved()), { millicpu, memoryBytes }, this.o.node.capacity);
      if (over) return reject(over);
    }
    if (current) {
      this.send({ case: 'accepted', value: { task } });
      if (current.spawned) this.sendStarted(current);
      return;
    }
    // No Accepted for a new start: Started (DelayedStarts) or a Finished says the same and more;
    // but one that waits for its turn to spawn (start-pacer.ts) is accepted at once.
    this.o.logger.debug({ task: st.taskId, attempt: st.attempt, argv: spec.argv }, 'starting task');
    const run = (): void => void this.o.executor.start(st.taskId, st.attempt, spec);
    if (this.pacer.offer({ ...task, millicpu, memoryBytes, run })) this.send({ case: 'accepted', value: { task } });
  }

  private cancelTask(ct: CancelTask): void {
    const task = ct.task;
    if (!task) return;
    // Still waiting for its turn to spawn: it never runs, and ends as a process killed at once would.
    const waiting = this.pacer.take(task.taskId, task.attempt);
    if (waiting) return this.onFinished(notStarted(waiting, 'SIGTERM', ''));
    if (this.o.executor.cancel(task.taskId, task.attempt, ct.graceMs || this.o.cancelGraceMs)) {
      this.o.logger.info({ task: task.taskId, attempt: task.attempt, reason: ct.reason }, 'cancelling task');
      return;
    }
    // Not running: repeat its result if we still hold it, else say it will not run.
    const done = this.o.outbox.get(task.taskId, task.attempt);
    if (done) this.send({ case: 'finished', value: done });
    else this.send({ case: 'rejected', value: { task, reason: 'not running on this worker' } });
  }

  private readonly onStarted = (e: StartedEvent): void => this.starts.add(e);

  private sendStarted(e: StartedEvent): void {
    this.send({ case: 'started', value: { task: { taskId: e.taskId, attempt: e.attempt }, pid: e.pid, startedUnixMs: BigInt(e.startedUnixMs) } });
  }

  private readonly onFinished = (e: FinishedEvent): void => {
    this.starts.drop(e);
    const finished = toFinished(e);
    this.o.logger.debug({ task: e.taskId, attempt: e.attempt, exitCode: e.exitCode, signal: e.signal, error: e.error }, 'task finished');
    // Sent at once and saved at the same time: the manager gets it a disk sync sooner, and the
    // copy on disk is what is resent (after a reconnect or restart) until it is acknowledged. A
    // crash before the save completes loses the result either way, unless the manager has it.
    this.o.outbox.add(finished).catch((err: unknown) => {
      // Still resent until acknowledged, but lost if this process dies first.
      this.o.logger.error({ err, task: e.taskId, attempt: e.attempt }, 'cannot save a task result to the outbox; it is kept in memory only');
    });
    this.send({ case: 'finished', value: finished });
  };

  /** Writes to the manager when connected; otherwise drops it (Hello and the outbox carry the state). */
  private send(msg: Outgoing): boolean {
    if (!this.stream || !this.welcomed || this.stopping) return false;
    this.stream.write(create(ConnectRequestSchema, { msg }));
    return true;
  }

  /** (Re)starts the silence watchdog for this stream; 0 disables it. */
  private arm(stream: Stream, ms: number, reason: string): void {
    clearTimeout(this.watchdog);
    this.watchdog = ms > 0 ? setTimeout(() => this.lost(stream, `${reason} for ${ms}ms`), ms) : undefined;
  }

  private lost(stream: Stream, reason: string, cause: Partial<grpc.StatusObject> = {}): void {
    if (stream !== this.stream) return;
    this.stream = undefined;
    const wasConnected = this.welcomed;
    this.welcomed = false;
    clearTimeout(this.watchdog);
    this.watchdog = undefined;
    this.logReads.abortAll();
    this.starts.clear();
    stream.cancel(); // no-op once the call has ended; frees a stream given up by the watchdog
    if (this.stopping) return;
    const address = this.list.current;
    const next = this.list.failed({ leader: leaderHint(cause), welcomed: wasConnected, notLeader: isNotLeader(cause) });
    const message = `lost connection to manager at ${address}: ${reason}`;
    // Warn once per outage and address (or when the cause changes), not on every failed redial; a refusal naming the leader is no outage.
    if (wasConnected || (!next.following && reason !== this.warned.get(address))) this.o.logger.warn(message);
    else this.o.logger.debug(message);
    if (this.warned.size > 64) this.warned.clear();
    if (!next.following) this.warned.set(address, reason);
    this.orphan.lost();
    this.redial(next);
  }

  /** Cut off past the orphan timeout: the manager gives these tasks up, so they must not run on. */
  private orphaned(silentMs: number, timeoutMs: number): void {
    if (this.welcomed || this.stopping) return;
    const error = `worker lost the manager: nothing heard for ${silentMs}ms (orphan timeout ${timeoutMs}ms); task killed`;
    const unstarted = this.pacer.clear();
    for (const w of unstarted) this.onFinished({ ...notStarted(w, 'SIGKILL', error), lost: true });
    const tasks = [...this.o.executor.abandonAll(error), ...unstarted];
    if (tasks.length === 0) return;
    this.o.logger.warn({ silentMs, orphanTimeoutMs: timeoutMs, tasks: tasks.map((t) => `${t.taskId}.${t.attempt}`) }, 'no manager within the orphan timeout: killed the running tasks');
  }

  /** Dials the next address: at once, or after a backoff pause once a whole round of the list has failed. */
  private redial({ pause, following }: NextDial): void {
    if (this.stopping || this.redialTimer) return;
    if (following) this.o.logger.info(`following the leader at ${following.leader} (${following.refusedBy} is not the leader)`);
    const maxMs = this.orphan.redialCap(this.o.reconnectMaxMs ?? 30_000);
    const delayMs = pause ? (this.o.redialDelay ?? redialDelay)(this.failures++, this.o.reconnectIntervalMs, maxMs) : 0;
    this.redialTimer = setTimeout(() => this.dial(), delayMs);
  }
}
