// The manager's event history for WatchEvents: every stored change of a task or a
// worker, as the group committer reports its commits. So a client hears only of
// what the store holds, each change with the revision of the txn that stored it,
// in revision order. The history starts when this manager starts to lead and
// keeps the latest changes only (bounded in count and in bytes); a stream reads
// it with a cursor (server/events-service.ts), so a slow reader holds nothing
// but its place, and one whose next event has left the ring is cut off.
import * as grpc from '@grpc/grpc-js';
import type { Task, Worker } from '../../proto/gen/schedapi/v1/types_pb.js';
import { ResourceExhaustedError, SchedError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { GroupCommitter } from './store/group-commit.js';
import { decodeTask, decodeWorker, TASKS, WORKERS } from './store/records.js';
import type { StoreOp } from './store/store.js';

export const DEFAULT_MAX_EVENTS = 10_000;
/** Counted as twice the records (see ENTRY_OVERHEAD): some 3,500 tasks with full 8 KiB output tails, or 10,000 smaller ones. */
export const DEFAULT_MAX_EVENT_BYTES = 64 * 1024 * 1024;
/** Open WatchEvents streams; each costs a cursor and a wake-up per commit. */
export const MAX_EVENT_STREAMS = 1000;
/** What an event costs besides its record: the entry, and the record once decoded (counted as much again). */
const ENTRY_OVERHEAD = 128;
/** The ring drops its evicted head once that many entries and half the array. */
const COMPACT_MIN = 4096;

/** The history no longer reaches back to the revision asked for: list again. */
export class EventsGoneError extends SchedError {
  constructor(message: string) {
    super(message, grpc.status.OUT_OF_RANGE);
  }
}

/** One stored change. */
export interface StoredEvent {
  readonly seq: number;
  readonly revision: bigint;
  readonly unixMs: number;
  readonly kind: 'task' | 'worker';
  /** The record as the store holds it. */
  readonly bytes: Uint8Array;
  /** The record decoded, once a stream needed it. */
  decoded?: Task | Worker;
}

export interface EventLogOptions {
  maxEvents?: number;
  maxBytes?: number;
  now?: () => number;
}

/** A stream reading the history: woken after each commit that added events, closed at shutdown. */
export interface EventReader {
  wake(): void;
  close(): void;
}

export class EventLog {
  /** entries[head..] are the events held; seq of entries[head] is nextSeq − count. */
  private entries: StoredEvent[] = [];
  private head = 0;
  private nextSeq = 0;
  private bytes = 0;
  /** Every change after this revision is held (undefined until the committer said where it started). */
  private floor: bigint | undefined;
  private latest = 0n;
  private readonly readers = new Set<EventReader>();
  private readonly maxEvents: number;
  private readonly maxBytes: number;
  private readonly now: () => number;

  constructor(
    committer: Pick<GroupCommitter, 'onCommit' | 'revision'>,
    private readonly log: Logger,
    opts: EventLogOptions = {},
  ) {
    this.maxEvents = opts.maxEvents ?? DEFAULT_MAX_EVENTS;
    this.maxBytes = opts.maxBytes ?? DEFAULT_MAX_EVENT_BYTES;
    this.now = opts.now ?? Date.now;
    const known = committer.revision();
    if (known > 0n) this.floor = this.latest = known;
    committer.onCommit((revision, ops) => this.committed(revision, ops));
  }

  /** The revision of the newest commit: a listing made now reflects everything up to it. */
  latestRevision(): bigint {
    return this.latest;
  }

  /** How many events are held (metrics, tests). */
  get size(): number {
    return this.entries.length - this.head;
  }

  /** How many streams read the history. */
  get streams(): number {
    return this.readers.size;
  }

  /**
   * start is where a stream resuming after `after` begins: the first event with a later
   * revision. 0 means from now on. EventsGoneError when the history does not reach that far back.
   */
  start(after: bigint): number {
    if (after === 0n) return this.nextSeq;
    if (this.floor === undefined) {
      throw new SchedError('the event history has not started yet (the store has not answered); try again shortly', grpc.status.UNAVAILABLE);
    }
    if (after < this.floor) {
      const oldest = this.size > 0 ? this.entries[this.head]!.revision : undefined;
      const held = oldest === undefined ? `no events yet; it holds every change after revision ${this.floor}` : `the oldest event it holds has revision ${oldest}`;
      throw new EventsGoneError(
        `after_revision ${after} is older than this manager's event history (${held}); list again and watch from the listing's revision`,
      );
    }
    // The first held event past `after` (revisions never decrease along the ring).
    let lo = this.head;
    let hi = this.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.entries[mid]!.revision <= after) lo = mid + 1;
      else hi = mid;
    }
    return this.nextSeq - (this.entries.length - lo);
  }

  /** The event at seq: undefined if there is none yet, 'gone' if it has left the ring. */
  at(seq: number): StoredEvent | 'gone' | undefined {
    const first = this.nextSeq - this.size;
    if (seq < first) return 'gone';
    if (seq >= this.nextSeq) return undefined;
    return this.entries[this.head + (seq - first)];
  }

  /** The event's record, decoded once and kept while the event is held. */
  object(e: StoredEvent): Task | Worker {
    e.decoded ??= e.kind === 'task' ? decodeTask(e.bytes) : decodeWorker(e.bytes);
    return e.decoded;
  }

  /** listen adds a reader (at most MAX_EVENT_STREAMS); returns its removal. */
  listen(reader: EventReader): () => void {
    if (this.readers.size >= MAX_EVENT_STREAMS) {
      throw new ResourceExhaustedError(`at most ${MAX_EVENT_STREAMS} event streams at once`);
    }
    this.readers.add(reader);
    return () => this.readers.delete(reader);
  }

  /** close ends every reader (shutdown). */
  close(): void {
    for (const r of [...this.readers]) r.close();
    this.readers.clear();
  }

  private committed(revision: bigint, ops: readonly StoreOp[]): void {
    // Without the start revision, the first commit tells: nobody else writes tasks or workers
    // while this manager leads, so nothing changed between the load and this commit.
    this.floor ??= ops.length > 0 ? revision - 1n : revision;
    if (revision > this.latest) this.latest = revision;
    const unixMs = this.now();
    let added = 0;
    for (const op of ops) {
      // A deleted record (retention, a removed worker) is no object to send.
      if (op.value === null) continue;
      const kind = op.key.startsWith(TASKS) ? 'task' : op.key.startsWith(WORKERS) ? 'worker' : undefined;
      if (!kind) continue;
      this.entries.push({ seq: this.nextSeq++, revision, unixMs, kind, bytes: op.value });
      this.bytes += 2 * op.value.byteLength + ENTRY_OVERHEAD;
      added++;
    }
    if (added === 0) return;
    this.evict();
    for (const r of this.readers) {
      try {
        r.wake();
      } catch (err) {
        this.log.error({ err }, 'event stream failed');
      }
    }
  }

  /** evict drops the oldest events past either bound; the history then starts after the last dropped. */
  private evict(): void {
    while (this.size > 0 && (this.size > this.maxEvents || this.bytes > this.maxBytes)) {
      const e = this.entries[this.head]!;
      this.entries[this.head++] = undefined as never;
      this.bytes -= 2 * e.bytes.byteLength + ENTRY_OVERHEAD;
      this.floor = e.revision;
    }
    if (this.head >= COMPACT_MIN && this.head * 2 >= this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }
}
