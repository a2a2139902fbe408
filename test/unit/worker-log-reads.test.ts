// ReadLogs answers on the worker: a task's log streamed in LogChunks on the
// worker's stream, paced by that stream's flow control, until done, StopLogs,
// or the loss of the stream. The stream is a stand-in whose write() reports
// a full buffer until the test lets it drain.
import { expect } from 'chai';
import { EventEmitter } from 'node:events';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { pino } from 'pino';
import { ReadLogsSchema, type ConnectRequest } from '../../proto/gen/schedapi/v1/worker_pb.js';
import type { Executor } from '../../worker-node/src/executor.js';
import { LogReads } from '../../worker-node/src/log-reads.js';
import { until, turns } from '../support/until.js';

type Stream = Parameters<LogReads['start']>[0];
type Chunk = { requestId: bigint; data: string; eof: boolean; error: string };

/** The worker's stream as LogReads uses it: write() says whether there is room for more. */
class FakeStream extends EventEmitter {
  readonly chunks: Chunk[] = [];
  /** What write() answers: false = the buffer is full, wait for 'drain'. */
  room = true;
  write(msg: ConnectRequest): boolean {
    if (msg.msg.case === 'logChunk') {
      const c = msg.msg.value;
      this.chunks.push({ requestId: c.requestId, data: Buffer.from(c.data).toString(), eof: c.eof, error: c.error });
    }
    return this.room;
  }
}

describe('worker log reads', () => {
  let dir: string;
  let running: Map<string, number>;
  let reads: LogReads;
  const executor = {
    logPaths: (taskId: string, attempt: number) => ({ stdout: join(dir, `${taskId}.${attempt}.stdout`), stderr: join(dir, `${taskId}.${attempt}.stderr`) }),
    get: (taskId: string) => (running.has(taskId) ? { attempt: running.get(taskId)! } : undefined),
  } as unknown as Executor;
  const inFlight = () => (reads as unknown as { reads: Map<bigint, AbortController> }).reads.size;
  const request = (requestId: bigint, taskId: string, more: Record<string, unknown> = {}) =>
    create(ReadLogsSchema, { requestId, task: { taskId, attempt: 1 }, ...more });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'worker-logreads-'));
    running = new Map();
    reads = new LogReads({ executor, workerId: 'w-1', logger: pino({ level: 'silent' }) });
  });
  afterEach(() => {
    reads.abortAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends the next chunk only once the stream has drained, then ends with eof', async () => {
    writeFileSync(executor.logPaths('t1', 1).stdout, Buffer.alloc(3 * 64 * 1024 + 10, 'z'));
    const stream = new FakeStream();
    stream.room = false;
    reads.start(stream as unknown as Stream, request(7n, 't1'), () => true);
    for (let i = 1; i <= 4; i++) {
      await until(`chunk ${i}`, () => stream.chunks.length === i);
      await turns();
      expect(stream.chunks, 'nothing more before the drain').to.have.length(i);
      stream.emit('drain');
    }
    await until('eof', () => stream.chunks.length === 5);
    expect(stream.chunks.map((c) => [c.requestId, c.data.length, c.eof])).to.deep.equal([
      [7n, 65536, false],
      [7n, 65536, false],
      [7n, 65536, false],
      [7n, 10, false],
      [7n, 0, true],
    ]);
    stream.emit('drain'); // the eof too waits for room
    await until('the read is over', () => inFlight() === 0);
  });

  it('StopLogs ends a followed read, also one waiting for the stream to drain; nothing more is sent', async () => {
    running.set('t2', 1);
    const path = executor.logPaths('t2', 1).stdout;
    writeFileSync(path, 'one\n');
    const stream = new FakeStream();
    reads.start(stream as unknown as Stream, request(8n, 't2', { follow: true }), () => true);
    await until('the first chunk', () => stream.chunks.length === 1);
    appendFileSync(path, 'two\n');
    await until('followed output', () => stream.chunks.length === 2);
    reads.stop(8n);
    await until('the read is over', () => inFlight() === 0);
    appendFileSync(path, 'three\n');
    running.delete('t2');
    await turns();
    expect(stream.chunks.map((c) => c.data)).to.deep.equal(['one\n', 'two\n']);

    // Blocked on a full stream: StopLogs releases it without a drain.
    stream.room = false;
    writeFileSync(executor.logPaths('t3', 1).stdout, Buffer.alloc(2 * 64 * 1024, 'q'));
    reads.start(stream as unknown as Stream, request(9n, 't3'), () => true);
    await until('a chunk of the second read', () => stream.chunks.some((c) => c.requestId === 9n));
    reads.stop(9n);
    await until('the second read is over', () => inFlight() === 0);
    expect(stream.chunks.filter((c) => c.requestId === 9n)).to.have.length(1);
  });

  it('stops as soon as its stream is no longer the session\'s, and abortAll ends every read', async () => {
    running.set('t4', 1);
    running.set('t5', 1);
    writeFileSync(executor.logPaths('t4', 1).stdout, 'a\n');
    writeFileSync(executor.logPaths('t5', 1).stdout, 'b\n');
    const stream = new FakeStream();
    let current = true;
    reads.start(stream as unknown as Stream, request(10n, 't4', { follow: true }), () => current);
    reads.start(stream as unknown as Stream, request(11n, 't5', { follow: true }), () => true);
    await until('both first chunks', () => stream.chunks.length === 2);
    current = false; // the session redialled: request 10 belongs to a stream that is gone
    appendFileSync(executor.logPaths('t4', 1).stdout, 'stale\n');
    await until('the stale read is over', () => inFlight() === 1);
    reads.abortAll();
    await until('every read is over', () => inFlight() === 0);
    appendFileSync(executor.logPaths('t5', 1).stdout, 'late\n');
    await turns();
    expect(stream.chunks.map((c) => c.data).sort()).to.deep.equal(['a\n', 'b\n']);
  });

  it('answers a log it does not have with eof and an error naming the attempt and the worker', async () => {
    const stream = new FakeStream();
    reads.start(stream as unknown as Stream, request(12n, 'never'), () => true);
    await until('the answer', () => stream.chunks.length === 1);
    expect(stream.chunks[0]).to.deep.include({ requestId: 12n, eof: true, data: '' });
    expect(stream.chunks[0]!.error).to.equal('no log of task never attempt 1 on worker w-1 (never ran here, or removed after the log retention)');
  });
});
