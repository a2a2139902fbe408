// Results the manager has not acknowledged yet, kept on disk so they survive
// a worker restart (even kill -9) and a manager that is down: one file per
// attempt, <data_dir>/outbox/<taskId>.<attempt>.bin, holding the Finished
// message as protobuf binary. A file is written (temp file, fdatasync,
// rename) before its result is sent, and removed when FinishedAck arrives.
// The manager stores a (task, attempt) result once, so sending one twice
// (after a reconnect, or a lost ack) is harmless; losing one is not.
import { closeSync, fdatasync, openSync, readdirSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { FinishedSchema, type Finished } from '../../proto/gen/sched/v1/worker_pb.js';
import type { FinishedEvent } from './executor.js';
import { PRIVATE_FILE_MODE, privateDir, privateFile } from './private-fs.js';
import { checkTaskId } from './task-id.js';

interface Entry {
  finished: Finished;
  /** Set while the file is being written; settles once it is durable (or failed). */
  writing?: Promise<void> | undefined;
}

const key = (taskId: string, attempt: number): string => `${taskId}.${attempt}`;

/** The Finished message for an executor result. */
export function toFinished(e: FinishedEvent): Finished {
  return create(FinishedSchema, {
    task: { taskId: e.taskId, attempt: e.attempt },
    exitCode: e.exitCode,
    signal: e.signal,
    error: e.error,
    startedUnixMs: BigInt(e.startedUnixMs),
    finishedUnixMs: BigInt(e.finishedUnixMs),
    stdoutTail: e.stdoutTail,
    stderrTail: e.stderrTail,
    pid: e.pid,
    timedOut: e.timedOut ?? false,
    startFailed: e.startFailed ?? false,
    lost: e.lost ?? false,
  });
}

export class Outbox {
  readonly dir: string;
  /** Files found at startup that could not be read; renamed to <name>.bad and left for inspection. */
  readonly skipped: string[] = [];
  // The hot path never reads the directory: this index is the truth while the process lives.
  private readonly entries = new Map<string, Entry>();

  /** Opens (creating it if needed, 0700) <dataDir>/outbox and loads the results a previous run left there. */
  constructor(dataDir: string) {
    this.dir = join(dataDir, 'outbox');
    privateDir(dataDir);
    privateDir(this.dir);
    for (const name of readdirSync(this.dir)) {
      const path = join(this.dir, name);
      if (name.endsWith('.tmp')) {
        // An add() that died before its rename: that result was never sent, and its
        // bytes may be torn. (The window is one write and one fdatasync long.)
        unlinkSync(path);
        continue;
      }
      if (!name.endsWith('.bin')) continue;
      let finished: Finished | undefined;
      try {
        finished = fromBinary(FinishedSchema, readFileSync(path));
      } catch {
        finished = undefined;
      }
      const task = finished?.task;
      if (!finished || !task || checkTaskId(task.taskId) || `${key(task.taskId, task.attempt)}.bin` !== name) {
        this.skipped.push(name);
        renameSync(path, `${path}.bad`);
        continue;
      }
      this.entries.set(key(task.taskId, task.attempt), { finished });
    }
  }

  /** Results not acknowledged yet, including those still being written. */
  get size(): number {
    return this.entries.size;
  }

  has(taskId: string, attempt: number): boolean {
    return this.entries.has(key(taskId, attempt));
  }

  get(taskId: string, attempt: number): Finished | undefined {
    return this.entries.get(key(taskId, attempt))?.finished;
  }

  /** Every pending result (loaded ones first, then in the order they were added). */
  all(): Finished[] {
    return [...this.entries.values()].map((e) => e.finished);
  }

  /**
   * Keeps a result: it is in the index at once (get/all see it), and the
   * promise resolves once its file is durable. On a write error the promise
   * rejects, but the result stays in memory and is still resent until acked.
   */
  add(finished: Finished): Promise<void> {
    const task = finished.task;
    const invalid = task ? checkTaskId(task.taskId) : 'task: missing';
    if (invalid || !task) return Promise.reject(new TypeError(`cannot keep result: ${invalid}`));
    const k = key(task.taskId, task.attempt);
    const previous = this.entries.get(k)?.writing;
    const entry: Entry = { finished };
    this.entries.set(k, entry);
    const write = (): Promise<void> => this.write(k, finished);
    // Two writes of one attempt must not share the temp file; in practice an attempt finishes once.
    const writing = (previous ? previous.then(write, write) : write()).finally(() => {
      if (entry.writing === writing) entry.writing = undefined;
    });
    entry.writing = writing;
    return writing;
  }

  /** Keeps a result unless one for that attempt is pending already (the real result beats a guessed one). */
  addIfAbsent(finished: Finished): Promise<boolean> {
    const task = finished.task;
    if (task && this.has(task.taskId, task.attempt)) return Promise.resolve(false);
    return this.add(finished).then(() => true);
  }

  /** Forgets an acknowledged result and deletes its file. False when it was not pending. */
  ack(taskId: string, attempt: number): boolean {
    const k = key(taskId, attempt);
    const entry = this.entries.get(k);
    if (!entry) return false;
    this.entries.delete(k);
    // Acked before its file was complete (a resend after Welcome raced the first write): delete it once written.
    if (entry.writing) void entry.writing.then(() => this.remove(k), () => this.remove(k));
    else this.remove(k);
    return true;
  }

  /** Resolves when every write started so far has settled (tests and shutdown). */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.entries.values()].map((e) => e.writing));
  }

  private path(k: string): string {
    return join(this.dir, `${k}.bin`);
  }

  // One write and one rename on the event loop (tens of microseconds); the
  // fdatasync, which waits for the disk, runs on libuv's thread pool so the
  // loop keeps spawning tasks meanwhile and concurrent syncs share journal commits.
  private write(k: string, finished: Finished): Promise<void> {
    const path = this.path(k);
    const tmp = `${path}.tmp`;
    return new Promise((resolve, reject) => {
      let fd: number;
      try {
        fd = openSync(tmp, 'w', PRIVATE_FILE_MODE);
      } catch (err) {
        return reject(err as Error);
      }
      try {
        privateFile(fd);
        writeSync(fd, toBinary(FinishedSchema, finished));
      } catch (err) {
        closeQuietly(fd);
        unlinkQuietly(tmp);
        return reject(err as Error);
      }
      fdatasync(fd, (syncErr) => {
        try {
          closeSync(fd);
          if (syncErr) throw syncErr;
          renameSync(tmp, path);
          resolve();
        } catch (err) {
          unlinkQuietly(tmp);
          reject(err as Error);
        }
      });
    });
  }

  private remove(k: string): void {
    if (this.entries.has(k)) return; // added again meanwhile
    unlinkQuietly(this.path(k));
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // ENOENT: already gone. Anything else only costs a harmless resend after a restart.
  }
}
