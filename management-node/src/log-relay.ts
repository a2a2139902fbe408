// Task logs live on the workers (never in the store: they would bloat it). A client's
// TaskLogs call becomes a ReadLogs on the worker's existing stream (the worker
// may be behind NAT, so the manager cannot dial it) and the LogChunks that
// come back are passed on, matched by request id.
import type { LogChunk } from '../../proto/gen/schedapi/v1/worker_pb.js';
import { FailedPreconditionError, WorkerUnavailableError } from '../../common/errors.js';

export interface LogSubscriber {
  data(chunk: Uint8Array): void;
  /** The end of the log (error undefined) or why it cannot be read. */
  end(error?: Error): void;
}

export interface LogRequest {
  workerId: string;
  taskId: string;
  attempt: number;
  stderr: boolean;
  tailLines?: number | undefined;
  follow: boolean;
}

/** What the relay needs from the cluster: a way to reach a worker's stream. */
export interface WorkerChannel {
  readLogs(workerId: string, requestId: bigint, req: LogRequest): boolean;
  stopLogs(workerId: string, requestId: bigint): void;
}

interface Open {
  workerId: string;
  sub: LogSubscriber;
}

export class LogRelay {
  private nextId = 1n;
  private readonly open = new Map<bigint, Open>();

  constructor(private readonly channel: WorkerChannel) {}

  /** Starts relaying; returns the function that stops it early (client gone). */
  start(req: LogRequest, sub: LogSubscriber): () => void {
    const id = this.nextId++;
    if (!this.channel.readLogs(req.workerId, id, req)) {
      sub.end(new WorkerUnavailableError(`the task's worker ${req.workerId} is disconnected; task logs are kept on the worker and can be read when it is back`));
      return () => undefined;
    }
    this.open.set(id, { workerId: req.workerId, sub });
    return () => {
      if (this.open.delete(id)) this.channel.stopLogs(req.workerId, id);
    };
  }

  /** A chunk from a worker; chunks of requests that ended (or of another worker) are dropped. */
  chunk(workerId: string, c: LogChunk): void {
    const o = this.open.get(c.requestId);
    if (!o || o.workerId !== workerId) return;
    if (c.data.length > 0) o.sub.data(c.data);
    if (!c.eof) return;
    this.open.delete(c.requestId);
    o.sub.end(c.error ? new FailedPreconditionError(c.error) : undefined);
  }

  /** The worker's stream is gone: its open reads end with an error. */
  workerGone(workerId: string): void {
    for (const [id, o] of this.open) {
      if (o.workerId !== workerId) continue;
      this.open.delete(id);
      o.sub.end(new WorkerUnavailableError(`the task's worker ${workerId} disconnected while sending the log`));
    }
  }
}
