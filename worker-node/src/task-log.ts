// Task output on the worker's disk: one file per attempt and stream, capped,
// read back for `schedctl tasks logs` (relayed by the manager), and removed
// after the retention period. Logs never go to the store.
import { closeSync, openSync, readdirSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { PRIVATE_FILE_MODE, privateFile } from './private-fs.js';

/** The output kept in memory for Finished.stdout_tail / stderr_tail. */
export const TAIL_BYTES = 4096;
const READ_CHUNK = 64 * 1024;

/** What the output files of one task may hold together: shared by its stdout and stderr sinks. */
export class LogBudget {
  left: number;
  constructor(readonly maxBytes: number) {
    this.left = maxBytes;
  }
}

/**
 * LogSink writes one output stream of a task to its file while the task's
 * budget lasts; beyond it the output is dropped (the task never blocks on it)
 * and one line says so. The last TAIL_BYTES written by the task are kept in
 * memory, truncated or not, for the task's result.
 */
export class LogSink {
  private fd: number | undefined;
  private truncated = false;
  private tail: Buffer = Buffer.alloc(0);

  constructor(
    readonly path: string,
    private readonly budget: LogBudget,
  ) {
    const fd = openSync(path, 'w', PRIVATE_FILE_MODE);
    try {
      privateFile(fd);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    this.fd = fd;
  }

  write(chunk: Buffer): void {
    this.tail = chunk.length >= TAIL_BYTES ? chunk.subarray(chunk.length - TAIL_BYTES) : Buffer.concat([this.tail, chunk]).subarray(-TAIL_BYTES);
    if (this.fd === undefined || this.truncated) return;
    const part = chunk.length <= this.budget.left ? chunk : chunk.subarray(0, this.budget.left);
    // Synchronous: page-cache writes of at most one pipe read (64 KiB), in order, with no queue to bound.
    if (part.length > 0) this.budget.left -= writeSync(this.fd, part);
    if (part.length < chunk.length) {
      this.truncated = true;
      writeSync(this.fd, `\n[sched: output truncated: the task's logs reached their limit of ${this.budget.maxBytes} bytes]\n`);
    }
  }

  /** The last TAIL_BYTES the task wrote. */
  tailBytes(): Uint8Array {
    return new Uint8Array(this.tail);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** Start offset of the last `lines` lines of a file (a final newline does not start an empty line). */
async function tailOffset(fh: FileHandle, size: number, lines: number): Promise<number> {
  if (lines === 0) return size;
  let pos = size;
  let seen = 0;
  let first = true;
  const buf = Buffer.allocUnsafe(READ_CHUNK);
  while (pos > 0) {
    const len = Math.min(READ_CHUNK, pos);
    pos -= len;
    const { bytesRead } = await fh.read(buf, 0, len, pos);
    for (let i = bytesRead - 1; i >= 0; i--) {
      if (buf[i] !== 0x0a) continue;
      if (first && pos + i === size - 1) continue; // the file's own final newline
      if (++seen === lines) return pos + i + 1;
    }
    first = false;
  }
  return 0;
}

export interface ReadLogOptions {
  tailLines?: number | undefined;
  /** Keep reading new output while this returns true, then read what is left and stop. */
  follow?: (() => boolean) | undefined;
  /** How often a followed log is checked for new output. */
  pollMs?: number;
  signal: AbortSignal;
  /** Called with each chunk in order; may wait (flow control). */
  send: (data: Uint8Array) => Promise<void> | void;
}

/**
 * readLog sends a log file (or its last lines) in chunks; with follow, it
 * keeps polling for new output until the attempt ends. Resolves when done or
 * aborted; rejects when the file cannot be read (ENOENT: no such log here).
 */
export async function readLog(path: string, o: ReadLogOptions): Promise<void> {
  const fh = await open(path, 'r');
  try {
    let pos = o.tailLines === undefined ? 0 : await tailOffset(fh, (await fh.stat()).size, o.tailLines);
    const buf = Buffer.allocUnsafe(READ_CHUNK);
    for (;;) {
      // Whether the attempt still runs is read before the file, so output written just before it ended is not missed.
      const more = o.follow?.() ?? false;
      for (;;) {
        if (o.signal.aborted) return;
        const { bytesRead } = await fh.read(buf, 0, READ_CHUNK, pos);
        if (bytesRead === 0) break;
        pos += bytesRead;
        await o.send(Uint8Array.prototype.slice.call(buf, 0, bytesRead));
      }
      if (!more || o.signal.aborted) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, o.pollMs ?? 200);
        function done() {
          clearTimeout(timer);
          o.signal.removeEventListener('abort', done);
          resolve();
        }
        o.signal.addEventListener('abort', done, { once: true });
      });
    }
  } finally {
    await fh.close();
  }
}

/**
 * sweepLogs removes log files not modified for `retentionMs`, except those of
 * attempts still running; returns how many it removed.
 */
export function sweepLogs(dir: string, retentionMs: number, running: (file: string) => boolean, now = Date.now()): number {
  let removed = 0;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const name of names) {
    if (running(name)) continue;
    const path = join(dir, name);
    try {
      if (now - statSync(path).mtimeMs < retentionMs) continue;
      unlinkSync(path);
      removed++;
    } catch {
      // removed meanwhile
    }
  }
  return removed;
}
