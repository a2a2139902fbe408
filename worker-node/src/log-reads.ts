// ReadLogs answers: a task's log file streamed to the manager in LogChunks on
// the worker's stream, paced by its flow control, until done, StopLogs, or the
// loss of that stream.
import type * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import type { Logger } from '../../common/logger.js';
import { ConnectRequestSchema, type ConnectRequest, type ConnectResponse, type ReadLogs } from '../../proto/gen/schedapi/v1/worker_pb.js';
import type { Executor } from './executor.js';
import { checkTaskId } from './task-id.js';
import { readLog } from './task-log.js';

type Stream = grpc.ClientDuplexStream<ConnectRequest, ConnectResponse>;

export class LogReads {
  /** In flight, by the manager's request id. */
  private readonly reads = new Map<bigint, AbortController>();

  constructor(private readonly o: { executor: Executor; workerId: string; logger: Logger }) {}

  /** Streams the log rl asks for on `stream` while current() says it is still the session's stream. */
  start(stream: Stream, rl: ReadLogs, current: () => boolean): void {
    const { requestId } = rl;
    const task = rl.task;
    const ctl = new AbortController();
    this.reads.set(requestId, ctl);
    const chunk = (data: Uint8Array, eof = false, error = '') =>
      create(ConnectRequestSchema, { msg: { case: 'logChunk', value: { requestId, data, eof, error } } });
    const write = async (msg: ConnectRequest): Promise<void> => {
      if (ctl.signal.aborted || !current()) return ctl.abort();
      if (stream.write(msg)) return;
      await new Promise<void>((resolve) => {
        const done = () => {
          stream.off('drain', done);
          ctl.signal.removeEventListener('abort', done);
          resolve();
        };
        stream.once('drain', done);
        ctl.signal.addEventListener('abort', done, { once: true });
      });
    };
    const run = async (): Promise<void> => {
      if (!task || checkTaskId(task.taskId)) throw new Error('task: invalid task id');
      const paths = this.o.executor.logPaths(task.taskId, task.attempt);
      await readLog(rl.stderr ? paths.stderr : paths.stdout, {
        tailLines: rl.tailLines,
        follow: rl.follow ? () => this.o.executor.get(task.taskId)?.attempt === task.attempt : undefined,
        signal: ctl.signal,
        send: (data) => write(chunk(data)),
      });
    };
    run().then(
      () => write(chunk(new Uint8Array(0), true)),
      (err: NodeJS.ErrnoException) => {
        const what = `task ${task?.taskId ?? '?'} attempt ${task?.attempt ?? 0}`;
        const error = err.code === 'ENOENT' ? `no log of ${what} on worker ${this.o.workerId} (never ran here, or removed after the log retention)` : `cannot read the log of ${what}: ${err.message}`;
        return write(chunk(new Uint8Array(0), true, error));
      },
    ).catch((err: unknown) => this.o.logger.warn({ err }, 'log read failed')).finally(() => this.reads.delete(requestId));
  }

  /** StopLogs: the client went away. */
  stop(requestId: bigint): void {
    this.reads.get(requestId)?.abort();
  }

  /** The stream is gone: every read on it ends. */
  abortAll(): void {
    for (const ctl of this.reads.values()) ctl.abort();
    this.reads.clear();
  }
}
