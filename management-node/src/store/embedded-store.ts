import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Key, type RootDatabase, type RootDatabaseOptionsWithPath } from 'lmdb';
import {
  checkOps,
  checkTxn,
  compareKeys,
  leaseTtlSeconds,
  LeaseRevokedError,
  type CancelWatch,
  type KeyValue,
  type Lease,
  type RangeOptions,
  type Store,
  type StoreOp,
  type TxnRequest,
  type TxnResult,
  type WatchEvent,
} from './store.js';

// On-disk layout, one lmdb database:
//   user key (a string)          -> 8-byte big-endian modRevision, then the value
//   [0, 'format']                -> FORMAT
//   [0, 'rev']                   -> 8-byte big-endian store revision (last committed txn)
//   [0, 'kl', key]               -> id of the lease that key is attached to
//   [0, 'lm', leaseId, key]      -> (empty): key is attached to leaseId
// Internal keys are arrays starting with a number: ordered-binary sorts them
// before every string, so a range over user keys (always from a string) never
// meets them, whatever characters user keys contain.
//
// Stores written before revisions existed (no format key, bare values) are
// converted on open: every value gets modRevision 1.

const FORMAT = '2';
const FORMAT_KEY = [0, 'format'];
const REV_KEY = [0, 'rev'];
const keyLeaseKey = (key: string) => [0, 'kl', key];
const memberKey = (leaseId: string, key: string) => [0, 'lm', leaseId, key];
const MEMBERS_START = [0, 'lm'];
const HEADER = 8;

// The store holds every task's argv and env (secrets, often): its directory and
// files are the owner's alone, whatever the umask, and are made so on open
// if an earlier version (or an operator) left them looser.
const DIR_MODE = 0o700;
const FILE_MODE = 0o600;
/** lmdb's files in the store directory. */
const LMDB_FILES = ['data.mdb', 'lock.mdb'];

/** Takes from path's permission bits whatever mode does not grant; a missing path is left alone. */
export function restrictMode(path: string, mode: number): void {
  let current: number;
  try {
    current = statSync(path).mode & 0o777;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if ((current & ~mode) === 0) return;
  try {
    chmodSync(path, current & mode);
  } catch (err) {
    throw new Error(`embedded store: cannot make ${path} readable by its owner only: ${(err as Error).message}`);
  }
}

/** Tokens of the embedded stores open in this process; leases of any other owner are from a dead process. */
const liveInstances = new Set<string>();

function encodeValue(rev: bigint, value: Uint8Array): Buffer {
  const buf = Buffer.allocUnsafe(HEADER + value.length);
  buf.writeBigUInt64BE(rev, 0);
  buf.set(value, HEADER);
  return buf;
}

function encodeRev(rev: bigint): Buffer {
  const buf = Buffer.alloc(HEADER);
  buf.writeBigUInt64BE(rev, 0);
  return buf;
}

/** A stored user value as a KeyValue; the value is a copy the caller may keep. */
function decodeValue(key: string, stored: Buffer): KeyValue {
  return { key, value: new Uint8Array(stored.subarray(HEADER)), modRevision: stored.readBigUInt64BE(0) };
}

interface Applied {
  result: TxnResult;
  events: WatchEvent[];
}

interface Watch {
  prefix: string;
  onEvent: (event: WatchEvent) => void;
  active: boolean;
}

/**
 * The embedded store: one lmdb file set in a directory, for a single manager
 * process (one open store per directory). Watches are in-process: they see
 * this store's commits. Leases cannot expire while the store is open: their
 * keys go on revoke(), close(), or, if the process died first, when the
 * directory is next opened.
 */
export function createEmbeddedStore(path: string): Store {
  mkdirSync(path, { recursive: true, mode: DIR_MODE });
  restrictMode(path, DIR_MODE);
  // noSubdir: path is the directory made above even when its name has a dot
  // (lmdb would otherwise take "store.v1" for a file). permissionsMode (not in
  // lmdb's types) is the mode of files lmdb creates; existing ones are fixed below.
  const options = { path, encoding: 'binary', keyEncoding: 'ordered-binary', noSubdir: false, permissionsMode: FILE_MODE };
  const db: RootDatabase<Buffer, Key> = open(options as RootDatabaseOptionsWithPath);
  try {
    for (const file of LMDB_FILES) restrictMode(join(path, file), FILE_MODE);
  } catch (err) {
    void db.close();
    throw err;
  }
  const instance = randomBytes(6).toString('hex');
  let leaseCounter = 0;

  // ---- inside an lmdb write transaction only ----

  const currentRev = (): bigint => db.get(REV_KEY)?.readBigUInt64BE(0) ?? 0n;
  const modRevOf = (key: string): bigint => db.get(key)?.readBigUInt64BE(0) ?? 0n;

  /** Detaches key from its lease, if any. */
  const detach = (key: string) => {
    const leaseId = db.get(keyLeaseKey(key));
    if (leaseId === undefined) return;
    void db.remove(keyLeaseKey(key));
    void db.remove(memberKey(leaseId.toString(), key));
  };

  /** Applies ops at revision rev (if anything changes); returns the events. */
  const applyOps = (ops: readonly StoreOp[], rev: bigint, leaseId?: string): WatchEvent[] => {
    const events: WatchEvent[] = [];
    for (const op of ops) {
      if (op.value === null) {
        // etcd: deleting a missing key is no change, no event, no new revision.
        if (db.get(op.key) === undefined) continue;
        void db.remove(op.key);
        detach(op.key);
        events.push({ type: 'delete', key: op.key, modRevision: rev });
      } else {
        void db.put(op.key, encodeValue(rev, op.value));
        detach(op.key);
        if (leaseId !== undefined) {
          void db.put(keyLeaseKey(op.key), Buffer.from(leaseId));
          void db.put(memberKey(leaseId, op.key), Buffer.alloc(0));
        }
        events.push({ type: 'put', key: op.key, value: new Uint8Array(op.value), modRevision: rev });
      }
    }
    if (events.length > 0) void db.put(REV_KEY, encodeRev(rev));
    return events;
  };

  const txnBody = (request: TxnRequest, leaseId?: string): Applied => {
    const current = currentRev();
    for (const c of request.compare) {
      if (modRevOf(c.key) !== c.modRevision) return { result: { succeeded: false, revision: current }, events: [] };
    }
    const events = applyOps(request.ops, current + 1n, leaseId);
    return { result: { succeeded: true, revision: events.length > 0 ? current + 1n : current }, events };
  };

  /** Keys attached to each lease, read in the current transaction. */
  const leaseMembers = (): Map<string, string[]> => {
    const members = new Map<string, string[]>();
    for (const key of db.getKeys({ start: MEMBERS_START })) {
      if (!Array.isArray(key) || key[0] !== 0 || key[1] !== 'lm') break;
      const [, , leaseId, userKey] = key as [number, string, string, string];
      let list = members.get(leaseId);
      if (!list) members.set(leaseId, (list = []));
      list.push(userKey);
    }
    return members;
  };

  /** Deletes the keys of the given leases, as one revision. */
  const revokeBody = (leaseIds: ReadonlySet<string>): Applied => {
    const current = currentRev();
    const ops: StoreOp[] = [];
    for (const [leaseId, keys] of leaseMembers()) {
      if (leaseIds.has(leaseId)) for (const key of keys) ops.push({ key, value: null });
    }
    const events = applyOps(ops, current + 1n);
    return { result: { succeeded: true, revision: events.length > 0 ? current + 1n : current }, events };
  };

  // ---- open: convert an old store, drop leases of a dead process ----

  try {
    db.transactionSync(() => {
      const format = db.get(FORMAT_KEY)?.toString();
      if (format !== undefined && format !== FORMAT) {
        throw new Error(`embedded store ${path} has format ${format}; this management node understands format ${FORMAT}`);
      }
      if (format === undefined) {
        // Read everything first, then rewrite: no writes under an open cursor.
        const old: Array<[string, Buffer]> = [];
        for (const { key, value } of db.getRange({ start: '' })) {
          if (typeof key !== 'string') break;
          old.push([key, Buffer.from(value)]);
        }
        for (const [key, value] of old) void db.put(key, encodeValue(1n, value));
        if (old.length > 0) void db.put(REV_KEY, encodeRev(1n));
        void db.put(FORMAT_KEY, Buffer.from(FORMAT));
      }
      const owner = (leaseId: string) => leaseId.slice(0, leaseId.indexOf('-'));
      const stale = new Set([...leaseMembers().keys()].filter((id) => !liveInstances.has(owner(id))));
      if (stale.size > 0) revokeBody(stale);
    });
  } catch (err) {
    void db.close();
    throw err;
  }
  liveInstances.add(instance);

  // ---- watches: in-process, fed in commit order ----

  const watches = new Set<Watch>();
  /** Tail of the delivery chain: each txn's events go out after the previous txn's. */
  let delivered: Promise<void> = Promise.resolve();

  const dispatch = (events: WatchEvent[]) => {
    if (events.length === 0 || watches.size === 0) return;
    const targets = [...watches];
    for (const event of events) {
      for (const w of targets) {
        if (!w.active || !event.key.startsWith(w.prefix)) continue;
        try {
          // Each watcher gets its own copy of the value.
          w.onEvent(event.value === undefined ? { ...event } : { ...event, value: new Uint8Array(event.value) });
        } catch (err) {
          // As etcd3 does: a throwing listener is a bug, reported as uncaught.
          setImmediate(() => {
            throw err;
          });
        }
      }
    }
  };

  /**
   * Runs body in an lmdb write transaction (lmdb runs them in call order, so
   * revisions follow call order; a child transaction, so a body that throws
   * part-way, e.g. on a key too long for lmdb, leaves nothing behind, where a
   * plain one would commit its earlier writes with the batch) and delivers its events to the watches before
   * resolving, so a caller that awaited a commit and then starts a watch does
   * not see that commit.
   */
  const write = (body: () => Applied): Promise<TxnResult> => {
    const committed = db.childTransaction(body);
    // Handled below once the earlier txns are delivered; this keeps a failure
    // that comes first from counting as an unhandled rejection meanwhile.
    committed.catch(() => {});
    const done = delivered.then(() => committed).then((applied) => {
      dispatch(applied.events);
      return applied.result;
    });
    delivered = done.then(
      () => undefined,
      () => undefined,
    );
    return done;
  };

  /** Copies op values now: lmdb runs the transaction later, and the caller may reuse its buffers at once. */
  const copyOps = (ops: readonly StoreOp[]): StoreOp[] =>
    ops.map((op) => ({ key: op.key, value: op.value === null ? null : Buffer.from(op.value) }));

  const txn = async (request: TxnRequest): Promise<TxnResult> => {
    checkTxn(request);
    const copied = { compare: request.compare.map((c) => ({ ...c })), ops: copyOps(request.ops) };
    return write(() => txnBody(copied));
  };

  // ---- leases ----

  /** Revoke functions of this store's live leases. */
  const leases = new Map<string, () => Promise<void>>();
  let closed = false;
  const checkOpen = () => {
    if (closed) throw new Error(`embedded store ${path} is closed`);
  };

  const getWithRevision = async (key: string): Promise<KeyValue | undefined> => {
    const stored = db.get(key);
    return stored === undefined ? undefined : decodeValue(key, stored);
  };

  return {
    description: `embedded ${path}`,
    async get(key) {
      return (await getWithRevision(key))?.value;
    },
    getWithRevision,
    async range(prefix: string, opts: RangeOptions = {}): Promise<KeyValue[]> {
      const out: KeyValue[] = [];
      const limit = opts.limit ?? 1000;
      // An `after` that sorts before the prefix does not narrow the range.
      const after = opts.after !== undefined && compareKeys(opts.after, prefix) >= 0 ? opts.after : undefined;
      for (const { key, value } of db.getRange({ start: after ?? prefix })) {
        if (typeof key !== 'string' || !key.startsWith(prefix)) break;
        if (key === after) continue;
        out.push(decodeValue(key, value));
        if (out.length >= limit) break;
      }
      return out;
    },
    async commit(ops: StoreOp[]) {
      checkOps(ops);
      const copied = copyOps(ops);
      // One lmdb transaction: atomic, one fsync for the whole batch.
      return (await write(() => txnBody({ compare: [], ops: copied }))).revision;
    },
    txn,
    async watch(prefix, onEvent) {
      checkOpen();
      const w: Watch = { prefix, onEvent, active: true };
      watches.add(w);
      const cancel: CancelWatch = async () => {
        w.active = false;
        watches.delete(w);
      };
      return cancel;
    },
    async grantLease(ttlMs) {
      leaseTtlSeconds(ttlMs); // validates; embedded leases do not expire (see above)
      checkOpen();
      const id = `${instance}-${++leaseCounter}`;
      let revoked = false;
      const revoke = async () => {
        if (revoked) return;
        revoked = true;
        leases.delete(id);
        await write(() => revokeBody(new Set([id])));
      };
      leases.set(id, revoke);
      const lease: Lease = {
        id,
        lost: new Promise<Error>(() => {}),
        aliveUntil: () => Infinity,
        async put(key, value) {
          if (revoked) throw new LeaseRevokedError(id);
          const copied = copyOps([{ key, value }]);
          // Queued before any revoke of this lease (transactions run in call
          // order), so a revoke always removes what this put adds.
          await write(() => txnBody({ compare: [], ops: copied }, id));
        },
        async create(key, value) {
          if (revoked) throw new LeaseRevokedError(id);
          const copied = copyOps([{ key, value }]);
          const r = await write(() => txnBody({ compare: [{ key, modRevision: 0n }], ops: copied }, id));
          return r.succeeded ? r.revision : undefined;
        },
        revoke,
      };
      return lease;
    },
    async close() {
      if (closed) return;
      closed = true;
      await Promise.all([...leases.values()].map((revoke) => revoke()));
      for (const w of watches) w.active = false;
      watches.clear();
      await delivered;
      liveInstances.delete(instance);
      await db.close();
    },
  };
}
