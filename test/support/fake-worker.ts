// A fleet of fake workers in one process, speaking the real WorkerService.Connect protocol over
// real gRPC: Hello, Pong, Accepted/Started/Finished for every StartTask (nothing is spawned),
// CancelTask, and Finished resent until FinishedAck. Hooks make single workers hostile: arbitrary
// messages, no Hello, paused reading, delayed answers. Cheap per message: it may share a core
// with the manager it talks to.
import * as grpc from '@grpc/grpc-js';
import { create, fromBinary, type MessageInitShape } from '@bufbuild/protobuf';
import { createServiceClient, type ServiceClient } from '../../common/grpc-service.js';
import {
  ConnectRequestSchema,
  ConnectResponseSchema,
  WorkerService,
  type CancelTask,
  type ConnectRequest,
  type ConnectResponse,
  type StartTask,
} from '../../proto/gen/schedapi/v1/worker_pb.js';

type WorkerClient = ServiceClient<(typeof WorkerService)['method']>;
/** One worker→manager message: the oneof of ConnectRequest. */
export type Outgoing = NonNullable<MessageInitShape<typeof ConnectRequestSchema>['msg']>;
/** Hello's fields as a test may set them (any value, valid or not). */
export interface HelloInit {
  workerId?: string;
  token?: string;
  capacity?: { millicpu: bigint; memoryBytes: bigint };
  labels?: Record<string, string>;
  hardware?: { hostname?: string; cpuCount?: number; memoryBytes?: bigint };
  version?: string;
  running?: Array<{ taskId: string; attempt: number }>;
}
type FinishedInit = Extract<Outgoing, { case: 'finished' }>['value'] & { task: { taskId: string; attempt: number } };

export interface Execution {
  taskId: string;
  attempt: number;
  workerId: string;
}

/** How one stream ended: the manager's status, or byUs when we cancelled it. */
export interface StreamEnd {
  workerId: string;
  code: grpc.status;
  details: string;
  byUs: boolean;
  welcomed: boolean;
  at: number;
}

export interface FakeWorkerOptions {
  capacity?: { millicpu: bigint; memoryBytes: bigint };
  labels?: Record<string, string>;
  version?: string;
  /** Time between Accepted and Started+Finished; 0 = all three at once. */
  runDelayMs?: number;
  /** Delay of every automatic answer (Pong, Accepted, ...); 0 = at once. */
  answerDelayMs?: number;
  /** Dial again after the manager ends the stream. */
  reconnect?: boolean;
  reconnectDelayMs?: number;
  /** Send Hello when the stream opens (false: never, for hostile tests). */
  sendHello?: boolean;
  /** Fields to override in Hello (hostile tests). */
  hello?: HelloInit;
  /** Sees every message first; return true to skip the default handling. */
  onMessage?: (w: FakeWorker, m: ConnectResponse) => boolean | void;
  /** Answer StartTask at all (false: ignore offers). */
  answerOffers?: boolean;
  /** Reply to Ping. */
  answerPings?: boolean;
}

interface Running {
  attempt: number;
  millicpu: number;
  memoryBytes: number;
  startedMs: number;
  timer: NodeJS.Timeout | undefined;
}

const key = (taskId: string, attempt: number) => `${taskId}/${attempt}`;

export class FakeWorker {
  stream: grpc.ClientDuplexStream<ConnectRequest, ConnectResponse> | undefined;
  welcomed = false;
  sessionId = '';
  /** Streams opened so far. */
  sessions = 0;
  readonly ends: StreamEnd[] = [];
  readonly received: ConnectResponse[] = [];
  /** Keep every received message in `received` (hostile tests; off for the fleet). */
  record = false;
  private readonly running = new Map<string, Running>();
  /** Results not yet acknowledged, resent after every Welcome. */
  readonly unacked = new Map<string, FinishedInit>();
  /** Every result produced, acknowledged or not (to answer a repeated offer or cancel). */
  private readonly results = new Map<string, FinishedInit>();
  private stopped = false;
  private endWaiters: Array<(e: StreamEnd) => void> = [];
  private welcomeWaiters: Array<() => void> = [];

  constructor(
    readonly id: string,
    private readonly client: WorkerClient,
    readonly opts: FakeWorkerOptions,
    private readonly fleet: FakeFleet | undefined,
  ) {}

  /** Opens a new stream (and sends Hello unless sendHello is false). */
  connect(): void {
    if (this.stopped) return;
    const stream = this.client.connect();
    this.stream = stream;
    this.welcomed = false;
    this.sessions++;
    let ended = false;
    const end = (code: grpc.status, details: string) => {
      if (ended) return;
      ended = true;
      const e: StreamEnd = { workerId: this.id, code, details, byUs: this.stopped || stream !== this.stream, welcomed: this.welcomed, at: Date.now() };
      if (this.stream === stream) {
        this.stream = undefined;
        this.welcomed = false;
      }
      this.ends.push(e);
      if (!e.byUs) this.fleet?.onManagerClosed(e);
      for (const w of this.endWaiters.splice(0)) w(e);
      if (!e.byUs && this.opts.reconnect && !this.stopped) {
        setTimeout(() => this.connect(), this.opts.reconnectDelayMs ?? 200).unref();
      }
    };
    stream.on('data', (m: ConnectResponse) => {
      if (stream === this.stream) this.receive(m);
    });
    stream.on('status', (s: grpc.StatusObject) => end(s.code, s.details));
    stream.on('error', (err: grpc.ServiceError) => end(err.code ?? grpc.status.UNKNOWN, err.details ?? err.message));
    if (this.opts.sendHello !== false) this.send({ case: 'hello', value: this.helloMessage() });
  }

  helloMessage(): HelloInit {
    return {
      workerId: this.id,
      capacity: this.opts.capacity ?? { millicpu: 4000n, memoryBytes: 8n * 1024n ** 3n },
      labels: this.opts.labels ?? {},
      version: this.opts.version ?? 'fake-0.0.0',
      running: [...this.running].map(([k, r]) => ({ taskId: k.slice(0, k.lastIndexOf('/')), attempt: r.attempt })),
      ...this.opts.hello,
    };
  }

  /** Writes any message on the current stream; false when there is none. */
  send(msg: Outgoing): boolean {
    const s = this.stream;
    if (!s || s.destroyed || s.writableEnded) return false;
    s.write(create(ConnectRequestSchema, { msg }));
    return true;
  }

  /** Stops reading the stream: the manager's writes back up (HTTP/2 flow control). */
  pauseReading(): void {
    this.stream?.pause();
  }
  resumeReading(): void {
    this.stream?.resume();
  }

  /** Resolves with how the current (or next) stream ended, or undefined after timeoutMs. */
  waitEnd(timeoutMs: number): Promise<StreamEnd | undefined> {
    if (!this.stream && this.ends.length > 0) return Promise.resolve(this.ends[this.ends.length - 1]);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.endWaiters = this.endWaiters.filter((w) => w !== done);
        resolve(undefined);
      }, timeoutMs);
      const done = (e: StreamEnd) => {
        clearTimeout(timer);
        resolve(e);
      };
      this.endWaiters.push(done);
    });
  }

  /** Resolves true once Welcome arrived on the current stream, false after timeoutMs or when it ends first. */
  waitWelcome(timeoutMs: number): Promise<boolean> {
    if (this.welcomed) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(false), timeoutMs);
      const welcome = () => finish(true);
      const ended = () => finish(false);
      const finish = (ok: boolean) => {
        clearTimeout(timer);
        this.welcomeWaiters = this.welcomeWaiters.filter((w) => w !== welcome);
        this.endWaiters = this.endWaiters.filter((w) => w !== ended);
        resolve(ok);
      };
      this.welcomeWaiters.push(welcome);
      this.endWaiters.push(ended);
    });
  }

  /** Ends the stream from our side (half-close, then cancel); no reconnect. */
  stop(): void {
    this.stopped = true;
    for (const r of this.running.values()) clearTimeout(r.timer);
    const s = this.stream;
    if (s) {
      s.resume();
      s.cancel();
    }
  }

  private later(fn: () => void): void {
    const d = this.opts.answerDelayMs ?? 0;
    if (d > 0) setTimeout(fn, d).unref();
    else fn();
  }

  private receive(m: ConnectResponse): void {
    if (this.record) this.received.push(m);
    if (this.opts.onMessage?.(this, m)) return;
    const msg = m.msg;
    switch (msg.case) {
      case 'welcome':
        this.welcomed = true;
        this.sessionId = msg.value.sessionId;
        for (const f of this.unacked.values()) this.send({ case: 'finished', value: f });
        for (const w of this.welcomeWaiters.splice(0)) w();
        return;
      case 'ping': {
        if (this.opts.answerPings === false) return;
        const seq = msg.value.seq;
        return this.later(() => this.send({ case: 'pong', value: { seq, runningTasks: this.running.size, load1: 0.1, memoryFreeBytes: 4n * 1024n ** 3n } }));
      }
      case 'startTask':
        if (this.opts.answerOffers === false) return;
        return this.later(() => this.startTask(msg.value));
      case 'cancelTask':
        return this.later(() => this.cancelTask(msg.value));
      case 'finishedAck': {
        const t = msg.value.task;
        if (t) this.unacked.delete(key(t.taskId, t.attempt));
        return;
      }
      case 'readLogs':
        return this.later(() => this.send({ case: 'logChunk', value: { requestId: msg.value.requestId, data: new Uint8Array(0), eof: true, error: 'fake worker keeps no logs' } }));
      default:
        return;
    }
  }

  private startTask(st: StartTask): void {
    const task = { taskId: st.taskId, attempt: st.attempt };
    const k = key(st.taskId, st.attempt);
    const done = this.results.get(k);
    if (done) {
      // A repeated offer: answered again, never run twice.
      this.send({ case: 'accepted', value: { task } });
      this.send({ case: 'finished', value: done });
      return;
    }
    if (this.running.has(k)) {
      this.send({ case: 'accepted', value: { task } });
      return;
    }
    for (const [other, r] of this.running) {
      if (other.startsWith(`${st.taskId}/`)) {
        this.send({ case: 'rejected', value: { task, reason: `attempt ${r.attempt} of this task still runs here` } });
        return;
      }
    }
    const millicpu = Number(st.spec?.resources?.millicpu ?? 0n);
    const memoryBytes = Number(st.spec?.resources?.memoryBytes ?? 0n);
    const cap = this.opts.capacity ?? { millicpu: 4000n, memoryBytes: 8n * 1024n ** 3n };
    let cpu = millicpu;
    let mem = memoryBytes;
    for (const r of this.running.values()) {
      cpu += r.millicpu;
      mem += r.memoryBytes;
    }
    if (cpu > Number(cap.millicpu) || mem > Number(cap.memoryBytes)) {
      this.send({ case: 'rejected', value: { task, reason: 'insufficient capacity on the fake worker' } });
      return;
    }
    this.fleet?.executions.push({ taskId: st.taskId, attempt: st.attempt, workerId: this.id });
    this.send({ case: 'accepted', value: { task } });
    const startedMs = Date.now();
    const delay = this.opts.runDelayMs ?? 0;
    if (delay <= 0) {
      this.send({ case: 'started', value: { task, pid: 4242, startedUnixMs: BigInt(startedMs) } });
      this.finish(k, task, startedMs, 0, '');
      return;
    }
    const r: Running = { attempt: st.attempt, millicpu, memoryBytes, startedMs, timer: undefined };
    this.running.set(k, r);
    this.send({ case: 'started', value: { task, pid: 4242, startedUnixMs: BigInt(startedMs) } });
    r.timer = setTimeout(() => this.finish(k, task, startedMs, 0, ''), delay);
    r.timer.unref();
  }

  private finish(k: string, task: { taskId: string; attempt: number }, startedMs: number, exitCode: number, signal: string): void {
    const r = this.running.get(k);
    if (r) clearTimeout(r.timer);
    this.running.delete(k);
    const f: FinishedInit = { task, exitCode, signal, pid: 4242, startedUnixMs: BigInt(startedMs), finishedUnixMs: BigInt(Date.now()) };
    this.results.set(k, f);
    this.unacked.set(k, f);
    this.send({ case: 'finished', value: f });
  }

  private cancelTask(ct: CancelTask): void {
    const t = ct.task;
    if (!t) return;
    const k = key(t.taskId, t.attempt);
    const r = this.running.get(k);
    if (r) return this.finish(k, { taskId: t.taskId, attempt: t.attempt }, r.startedMs, -1, 'SIGTERM');
    const done = this.results.get(k);
    if (done) this.send({ case: 'finished', value: done });
    else this.send({ case: 'rejected', value: { task: { taskId: t.taskId, attempt: t.attempt }, reason: 'not running on this worker' } });
  }
}

export interface FleetOptions extends FakeWorkerOptions {
  /** host:port of the manager. */
  address: string;
  count: number;
  idPrefix?: string;
  /** Streams per HTTP/2 connection (the manager may cap concurrent streams per connection). */
  workersPerChannel?: number;
}

/** workerClient makes a client with its own HTTP/2 connection (not shared through the global subchannel pool). */
export function workerClient(address: string, tag: string): WorkerClient {
  return createServiceClient(WorkerService, address, grpc.credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
    'sched.fake_channel': tag,
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 1000,
    // Large Hellos and results are the point of some hostile tests.
    'grpc.max_send_message_length': 64 * 1024 * 1024,
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
  });
}

let clientSeq = 0;

/** openRawConnect opens a Connect stream whose writes are raw bytes: any encoding, valid or not. */
export function openRawConnect(client: WorkerClient): grpc.ClientDuplexStream<Buffer, ConnectResponse> {
  return client.raw.makeBidiStreamRequest(
    `/${WorkerService.typeName}/Connect`,
    (b: Buffer) => b,
    (b: Buffer) => fromBinary(ConnectResponseSchema, b),
  );
}

export class FakeFleet {
  readonly workers: FakeWorker[] = [];
  readonly clients: WorkerClient[] = [];
  readonly executions: Execution[] = [];
  /** Streams the manager ended (any status) while the worker did not ask for it. */
  readonly managerClosed: StreamEnd[] = [];

  constructor(readonly opts: FleetOptions) {
    const per = opts.workersPerChannel ?? 50;
    const prefix = opts.idPrefix ?? 'fake';
    for (let i = 0; i < opts.count; i++) {
      if (i % per === 0) this.clients.push(workerClient(opts.address, `${prefix}-${process.pid}-${clientSeq++}`));
      const id = `${prefix}-${String(i).padStart(4, '0')}`;
      this.workers.push(new FakeWorker(id, this.clients[this.clients.length - 1]!, { reconnect: true, ...opts }, this));
    }
  }

  /** A client of its own for a worker added by a test (hostile ones get their own connection). */
  add(id: string, opts: FakeWorkerOptions = {}): FakeWorker {
    const client = workerClient(this.opts.address, `${id}-${process.pid}-${clientSeq++}`);
    this.clients.push(client);
    const w = new FakeWorker(id, client, opts, this);
    this.workers.push(w);
    return w;
  }

  onManagerClosed = (e: StreamEnd): void => void this.managerClosed.push(e);

  /** Connects every worker of the fleet (not the added ones) and waits until all are welcomed. */
  async start(timeoutMs = 60_000): Promise<void> {
    const own = this.workers.slice(0, this.opts.count);
    for (const w of own) w.connect();
    const ok = await Promise.all(own.map((w) => w.waitWelcome(timeoutMs)));
    const missing = ok.filter((x) => !x).length;
    if (missing > 0) throw new Error(`${missing} of ${own.length} fake workers got no Welcome within ${timeoutMs}ms`);
  }

  connected = (): number => this.workers.filter((w) => w.welcomed).length;
  unacked = (): number => this.workers.reduce((n, w) => n + w.unacked.size, 0);

  stop(): void {
    for (const w of this.workers) w.stop();
    for (const c of this.clients) c.close();
  }
}
