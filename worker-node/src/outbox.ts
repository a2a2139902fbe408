// Results the manager has not acknowledged yet, kept on disk so they survive
// a worker restart (even kill -9) and a manager that is down.
//
// One append-only journal, <data_dir>/outbox/results.journal: each record is
// [u32 length][u32 crc32 of the message][Finished as protobuf binary]. The
// results added in one turn of the event loop are appended with one write and
// made durable with one fdatasync, off the loop (group commit, as the manager
// does for its store writes): a file per result cost an open, a rename and an
// unlink each, metadata changes the filesystem journals one by one.
// Acknowledgements are not written: a result that comes back after a restart
// is resent, and the manager, which stores a (task, attempt) result once,
// acknowledges the repeat without storing it. So the journal is truncated
// when nothing is pending, and rewritten with only the pending results (temp
// file, fdatasync, rename) once it has grown well past them.
import { closeSync, fdatasync, fsyncSync, ftruncateSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { FinishedSchema, type Finished } from '../../proto/gen/schedapi/v1/worker_pb.js';
import type { FinishedEvent } from './executor.js';
import { PRIVATE_FILE_MODE, privateDir, privateFile } from './private-fs.js';
import { checkTaskId } from './task-id.js';

export const JOURNAL = 'results.journal';
const HEADER = 8;
/** A Finished is a few KiB at most (its tails are capped); anything longer is damage. */
const MAX_RECORD = 1 << 20;
/** The journal is rewritten once it is this long and more than twice what is pending. */
const COMPACT_BYTES = 1 << 20;

interface Entry {
  finished: Finished;
  /** Its journal record, kept for rewrites. */
  record: Buffer;
}
interface Queued {
  record: Buffer;
  resolve: () => void;
  reject: (err: Error) => void;
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
    oomKilled: e.oomKilled ?? false,
    peakMemoryBytes: BigInt(e.peakMemoryBytes ?? 0),
    cpuTimeUs: BigInt(e.cpuTimeUs ?? 0),
  });
}

function encode(finished: Finished): Buffer {
  const body = toBinary(FinishedSchema, finished);
  const record = Buffer.allocUnsafe(HEADER + body.length);
  record.writeUInt32LE(body.length, 0);
  record.writeUInt32LE(crc32(body), 4);
  record.set(body, HEADER);
  return record;
}

/** A result read back, or why it cannot be used. */
function decode(body: Uint8Array): Finished | undefined {
  try {
    const finished = fromBinary(FinishedSchema, body);
    return finished.task && !checkTaskId(finished.task.taskId) ? finished : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The results a journal holds, in order (a later record of an attempt replaces
 * an earlier one), and where its readable part ends: a record cut short by a
 * crash, or damaged, ends it.
 */
export function readJournal(path: string): { results: Finished[]; end: number; size: number } {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { results: [], end: 0, size: 0 };
    throw err;
  }
  const results: Finished[] = [];
  let pos = 0;
  while (pos + HEADER <= data.length) {
    const len = data.readUInt32LE(pos);
    if (len > MAX_RECORD || pos + HEADER + len > data.length) break;
    const body = data.subarray(pos + HEADER, pos + HEADER + len);
    if (crc32(body) !== data.readUInt32LE(pos + 4)) break;
    const finished = decode(body);
    if (!finished) break;
    results.push(finished);
    pos += HEADER + len;
  }
  return { results, end: pos, size: data.length };
}

/** The attempts ("<task>.<attempt>") an outbox directory holds on disk, without changing it (tests). */
export function pendingOnDisk(dir: string): Set<string> {
  const keys = new Set<string>();
  for (const f of readJournal(join(dir, JOURNAL)).results) keys.add(key(f.task!.taskId, f.task!.attempt));
  return keys;
}

export class Outbox {
  readonly dir: string;
  /** What was found unreadable at startup, set aside as <name>.bad for inspection. */
  readonly skipped: string[] = [];
  // The hot path never reads the directory: this index is the truth while the process lives.
  private readonly entries = new Map<string, Entry>();
  private readonly path: string;
  private fd = -1;
  /** Bytes in the journal, and in the records of the pending results. */
  private journalBytes = 0;
  private liveBytes = 0;
  private queue: Queued[] = [];
  private writing: Promise<void> | undefined;
  /** A write failed: the next batch rewrites the journal whole rather than append after a torn record. */
  private damaged = false;

  /** Opens (creating it if needed, 0700) <dataDir>/outbox and loads the results a previous run left there. */
  constructor(dataDir: string) {
    this.dir = join(dataDir, 'outbox');
    this.path = join(this.dir, JOURNAL);
    privateDir(dataDir);
    privateDir(this.dir);
    const legacy = this.loadFiles();
    const journal = readJournal(this.path);
    for (const f of journal.results) this.keep(f, encode(f));
    if (journal.end < journal.size) {
      // Cut short by a crash (or damaged): what follows the last whole record was never acknowledged as saved.
      const bad = `${JOURNAL}.${journal.end}.bad`;
      writeFileSync(join(this.dir, bad), readFileSync(this.path).subarray(journal.end), { mode: PRIVATE_FILE_MODE });
      this.skipped.push(bad);
    }
    // Start from a journal of just what is pending: no torn tail to append after, no acked past.
    this.rewriteSync();
    for (const name of legacy) unlinkSync(join(this.dir, name));
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
   * promise resolves once it is durable. On a write error the promise
   * rejects, but the result stays in memory and is still resent until acked.
   */
  add(finished: Finished): Promise<void> {
    const task = finished.task;
    const invalid = task ? checkTaskId(task.taskId) : 'task: missing';
    if (invalid || !task) return Promise.reject(new TypeError(`cannot keep result: ${invalid}`));
    const record = encode(finished);
    this.keep(finished, record);
    return new Promise((resolve, reject) => {
      this.queue.push({ record, resolve, reject });
      this.kick();
    });
  }

  /** Keeps a result unless one for that attempt is pending already (the real result beats a guessed one). */
  addIfAbsent(finished: Finished): Promise<boolean> {
    const task = finished.task;
    if (task && this.has(task.taskId, task.attempt)) return Promise.resolve(false);
    return this.add(finished).then(() => true);
  }

  /** Forgets an acknowledged result. False when it was not pending. */
  ack(taskId: string, attempt: number): boolean {
    const k = key(taskId, attempt);
    const entry = this.entries.get(k);
    if (!entry) return false;
    this.entries.delete(k);
    this.liveBytes -= entry.record.length;
    this.trim();
    return true;
  }

  /** Resolves when every write started so far has settled (tests and shutdown). */
  async flush(): Promise<void> {
    while (this.writing) await this.writing.catch(() => undefined);
  }

  private keep(finished: Finished, record: Buffer): void {
    const k = key(finished.task!.taskId, finished.task!.attempt);
    this.liveBytes -= this.entries.get(k)?.record.length ?? 0;
    this.entries.delete(k); // a result added again goes to the end, as it does in the journal
    this.entries.set(k, { finished, record });
    this.liveBytes += record.length;
  }

  private kick(): void {
    if (this.writing || this.queue.length === 0) return;
    this.writing = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.writeBatch());
    void this.writing.finally(() => {
      this.writing = undefined;
      this.trim();
      this.kick();
    });
  }

  /** Appends what was queued (or rewrites the journal when due) and syncs it once, off the event loop. */
  private async writeBatch(): Promise<void> {
    const batch = this.queue;
    this.queue = [];
    try {
      if (this.damaged || (this.journalBytes >= COMPACT_BYTES && this.journalBytes > 2 * this.liveBytes)) {
        // The pending results include the batch's: rewriting them all saves it too.
        const fd = this.openTemp();
        await syncAndClose(fd);
        this.install();
      } else {
        const data = batch.length === 1 ? batch[0]!.record : Buffer.concat(batch.map((q) => q.record));
        try {
          writeSync(this.fd, data);
        } catch (err) {
          this.damaged = true; // maybe a part of it landed
          throw err;
        }
        this.journalBytes += data.length;
        await new Promise<void>((resolve, reject) => fdatasync(this.fd, (err) => (err ? reject(err) : resolve())));
      }
      for (const q of batch) q.resolve();
    } catch (err) {
      for (const q of batch) q.reject(err as Error);
    }
  }

  /**
   * Nothing pending: every record in the journal is acknowledged. (A write in
   * flight then carries acknowledged results only; it may land after this.)
   */
  private trim(): void {
    if (this.entries.size > 0 || this.journalBytes === 0) return;
    try {
      // No sync: if the truncation is lost in a crash, the old results are resent and acknowledged again.
      ftruncateSync(this.fd, 0);
      this.journalBytes = 0;
    } catch {
      // it is compacted on a later write
    }
  }

  /** Writes every pending result to the temp journal; returns its open fd. */
  private openTemp(): number {
    const fd = openSync(`${this.path}.tmp`, 'w', PRIVATE_FILE_MODE);
    try {
      privateFile(fd);
      const records = [...this.entries.values()].map((e) => e.record);
      if (records.length > 0) writeSync(fd, Buffer.concat(records));
      return fd;
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  /** The synced temp journal becomes the journal, opened for appends. */
  private install(): void {
    renameSync(`${this.path}.tmp`, this.path);
    fsyncDir(this.dir);
    const fd = openSync(this.path, 'a', PRIVATE_FILE_MODE);
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = fd;
    this.journalBytes = this.liveBytes;
    this.damaged = false;
  }

  private rewriteSync(): void {
    const fd = this.openTemp();
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.install();
  }

  /**
   * The results of the one-file-per-result outbox of earlier versions
   * (<task>.<attempt>.bin), kept until the journal holds them; returns their
   * names. Unreadable ones are renamed to <name>.bad; temp files are dropped.
   */
  private loadFiles(): string[] {
    const loaded: string[] = [];
    for (const name of readdirSync(this.dir)) {
      const path = join(this.dir, name);
      if (name.endsWith('.tmp')) {
        // A write that died before its rename: that result was never acknowledged as saved.
        unlinkSync(path);
        continue;
      }
      if (!name.endsWith('.bin')) continue;
      const finished = decode(readFileSync(path));
      if (!finished || `${key(finished.task!.taskId, finished.task!.attempt)}.bin` !== name) {
        this.skipped.push(name);
        renameSync(path, `${path}.bad`);
        continue;
      }
      this.keep(finished, encode(finished));
      loaded.push(name);
    }
    return loaded;
  }
}

function syncAndClose(fd: number): Promise<void> {
  return new Promise((resolve, reject) =>
    fdatasync(fd, (err) => {
      try {
        closeSync(fd);
      } catch {
        // closed either way
      }
      if (err) reject(err);
      else resolve();
    }),
  );
}

/** Makes a rename in dir durable. */
function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
