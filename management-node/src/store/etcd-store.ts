import { performance } from 'node:perf_hooks';
import { Etcd3, EtcdLeaseInvalidError, GRPCInvalidArgumentError, GRPCUnavailableError, type IKeyValue, type IOptions, type Lease as EtcdLease, type Watcher } from 'etcd3';
import { StoreRefusedError, StoreUnavailableError } from '../../../common/errors.js';
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

/**
 * Fault policies that use every endpoint. etcd3's defaults retry every call
 * three times and put each host behind a circuit breaker that, after three
 * failures, refuses it for 5 s, even after that member is back. Here a call
 * that cannot reach its member (UNAVAILABLE: refused, reset, no route) is
 * tried on the next one at once, each member at most once per call, and a
 * member that failed is skipped by later calls for HOST_COOLDOWN_MS. Other
 * failures (a deadline, a refusal by etcd) are the callers' to retry (group
 * commit, startup): they own the policy. A write is only retried when it
 * never reached a member, so it is applied at most once.
 */
type FaultPolicy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;
type Execute = <T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T) => Promise<T>;
const HOST_COOLDOWN_MS = 500;
const unreachable = (err: unknown): boolean => err instanceof GRPCUnavailableError || err instanceof HostCoolingDown;

class HostCoolingDown extends Error {}

function policy(execute: Execute): FaultPolicy {
  return { execute } as unknown as FaultPolicy;
}

/** Tries the call on up to `members` members in turn (etcd3 moves to the next host on each attempt). */
function acrossMembers(members: number): FaultPolicy {
  return policy(async (fn) => {
    let last: unknown;
    for (let i = 0; i < members; i++) {
      try {
        return await fn({ signal: new AbortController().signal });
      } catch (err) {
        if (!unreachable(err)) throw err;
        last = err;
      }
    }
    throw last;
  });
}

/** Skips a member for HOST_COOLDOWN_MS after it was unreachable. */
function cooldown(host: string): FaultPolicy {
  let until = 0;
  return policy(async (fn) => {
    if (Date.now() < until) throw new HostCoolingDown(`etcd member ${host} was unreachable less than ${HOST_COOLDOWN_MS} ms ago`);
    try {
      return await fn({ signal: new AbortController().signal });
    } catch (err) {
      if (err instanceof GRPCUnavailableError || (err instanceof Error && /UNAVAILABLE|ECONNREFUSED|ECONNRESET/.test(err.message))) until = Date.now() + HOST_COOLDOWN_MS;
      throw err;
    }
  });
}

/**
 * Watch reconnect backoff: 100 ms doubling to 2 s (etcd3's default climbs to
 * 30 s, so a watch would lag long after etcd is back).
 */
type WatchBackoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;
function watchBackoff(duration = 100): WatchBackoff {
  return { duration, next: () => watchBackoff(Math.min(duration * 2, 2000)) };
}

/** How long close() and a watch's cancel wait for etcd before giving up on it. */
const CANCEL_WAIT_MS = 1000;

export interface EtcdStoreOptions {
  endpoints: string[];
  prefix: string;
  /**
   * Deadline of each etcd call, connecting included; default 5000 ms.
   * (etcd3 ignores its own dialTimeout option, so this is what bounds a dial.)
   */
  dialTimeoutMs?: number;
}

/** rangeEnd is the smallest key greater than every key starting with prefix. */
function rangeEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

function unavailable(endpoints: string[], err: unknown): StoreUnavailableError {
  const msg = err instanceof Error ? err.message : String(err);
  return new StoreUnavailableError(`etcd at ${endpoints.join(',')}: ${msg.split('\n')[0]}`);
}

export function createEtcdStore(options: EtcdStoreOptions): Store {
  const client = new Etcd3({
    hosts: options.endpoints,
    faultHandling: { host: (h) => cooldown(h), global: acrossMembers(options.endpoints.length), watchBackoff: watchBackoff() },
  });
  const prefix = options.prefix;
  const full = (key: string) => Buffer.from(prefix + key);
  const callTimeoutMs = options.dialTimeoutMs ?? 5000;
  const deadline = () => ({ deadline: Date.now() + callTimeoutMs });
  const fail = (err: unknown) => unavailable(options.endpoints, err);
  const toKeyValue = (kv: IKeyValue): KeyValue => ({
    key: kv.key.toString().slice(prefix.length),
    value: new Uint8Array(kv.value),
    modRevision: BigInt(kv.mod_revision),
  });
  const toRequestOps = (ops: StoreOp[]) =>
    ops.map((op) =>
      op.value === null
        ? { request_delete_range: { key: full(op.key) } }
        : // A copy: the caller may reuse its buffer as soon as commit() returns.
          { request_put: { key: full(op.key), value: Buffer.from(op.value) } },
    );

  /** Live leases and watches, so close() can end them: etcd3's close() stops neither keep-alives nor watch retries. */
  const leases = new Set<EtcdLease>();
  const watches = new Set<CancelWatch>();

  const getWithRevision = async (key: string): Promise<KeyValue | undefined> => {
    try {
      const res = await client.kv.range({ key: full(key) }, deadline());
      const kv = res.kvs[0];
      return kv ? toKeyValue(kv) : undefined;
    } catch (err) {
      throw fail(err);
    }
  };

  const txn = async (request: TxnRequest): Promise<TxnResult> => {
    checkTxn(request);
    const compare = request.compare.map((c) => ({
      key: full(c.key),
      target: 'Mod' as const,
      result: 'Equal' as const,
      mod_revision: c.modRevision.toString(),
    }));
    const success = toRequestOps(request.ops);
    try {
      const res = await client.kv.txn({ compare, success, failure: [] }, deadline());
      return { succeeded: res.succeeded, revision: BigInt(res.header.revision) };
    } catch (err) {
      // etcd answered and said no (too large, too many ops): the same request will never pass.
      if (err instanceof GRPCInvalidArgumentError) throw new StoreRefusedError(`etcd: ${err.message.split('\n')[0]}`);
      throw fail(err);
    }
  };

  /** Waits for a watcher's first 'connected' (or 'error'), at most callTimeoutMs. */
  const connected = (watcher: Watcher) =>
    new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(timer);
        watcher.off('connected', onConnected);
        watcher.off('error', onError);
        if (err) reject(err);
        else resolve();
      };
      const onConnected = () => done();
      const onError = (err: Error) => done(err);
      const timer = setTimeout(() => done(new Error(`watch not established within ${callTimeoutMs} ms`)), callTimeoutMs);
      watcher.on('connected', onConnected);
      watcher.on('error', onError);
    });

  /** Bounds a promise to CANCEL_WAIT_MS (etcd may be gone); never rejects. */
  const bounded = (promise: Promise<unknown>) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, CANCEL_WAIT_MS);
      timer.unref();
      promise.then(
        () => {
          clearTimeout(timer);
          resolve();
        },
        () => {
          clearTimeout(timer);
          resolve();
        },
      );
    });

  let closed = false;

  return {
    description: `etcd ${options.endpoints.join(',')} prefix ${prefix}`,
    async get(key) {
      return (await getWithRevision(key))?.value;
    },
    getWithRevision,
    async range(keyPrefix: string, opts: RangeOptions = {}): Promise<KeyValue[]> {
      // An `after` that sorts before the prefix does not narrow the range.
      const start =
        opts.after !== undefined && compareKeys(opts.after, keyPrefix) >= 0
          ? Buffer.concat([full(opts.after), Buffer.from([0])])
          : full(keyPrefix);
      try {
        const res = await client.kv.range(
          { key: start, range_end: rangeEnd(full(keyPrefix)), limit: opts.limit ?? 1000 },
          deadline(),
        );
        return res.kvs.map(toKeyValue);
      } catch (err) {
        throw fail(err);
      }
    },
    async commit(ops: StoreOp[]) {
      checkOps(ops);
      return (await txn({ compare: [], ops })).revision;
    },
    txn,
    async watch(keyPrefix, onEvent, onError) {
      if (closed) throw fail(new Error('store closed'));
      // watcher() attaches at once, so the listeners below are in place before
      // the first event can arrive; create() would add them a tick too late.
      const watcher = client.watch().inRange({ start: full(keyPrefix), end: rangeEnd(full(keyPrefix)) }).watcher();
      let active = true;
      let established = false;
      let earlyError: Error | undefined;
      const cancel: CancelWatch = async () => {
        if (!watches.delete(cancel)) return;
        active = false;
        await bounded(watcher.cancel());
      };
      const emit = (type: WatchEvent['type'], kv: IKeyValue) => {
        if (!active) return;
        const key = kv.key.toString().slice(prefix.length);
        const modRevision = BigInt(kv.mod_revision);
        onEvent(type === 'put' ? { type, key, value: new Uint8Array(kv.value), modRevision } : { type, key, modRevision });
      };
      watcher.on('put', (kv) => emit('put', kv));
      watcher.on('delete', (kv) => emit('delete', kv));
      // An 'error' means etcd ended the watch for good (e.g. the revision to
      // resume from was compacted) and etcd3 has dropped it. Before it is
      // established, connected() turns it into watch()'s rejection.
      watcher.on('error', (err: Error) => {
        if (!active) return;
        active = false;
        if (!established) {
          earlyError = err;
          return;
        }
        watches.delete(cancel);
        onError?.(err);
      });
      try {
        await connected(watcher);
        if (earlyError) throw earlyError;
      } catch (err) {
        active = false;
        await bounded(watcher.cancel());
        throw fail(err);
      }
      established = true;
      if (closed) {
        active = false;
        await bounded(watcher.cancel());
        throw fail(new Error('store closed'));
      }
      watches.add(cancel);
      return cancel;
    },
    async grantLease(ttlMs) {
      const ttl = leaseTtlSeconds(ttlMs);
      if (closed) throw fail(new Error('store closed'));
      const lease = client.lease(ttl, deadline());
      let resolveLost!: (err: Error) => void;
      const lost = new Promise<Error>((resolve) => (resolveLost = resolve));
      let ended = false;
      lease.on('lost', (err: Error) => {
        leases.delete(lease);
        if (ended) return;
        ended = true;
        resolveLost(err);
      });
      // Renewals go out every TTL/3; each answered one proves the lease alive for a TTL from when it was sent.
      let sentAt = performance.now();
      let aliveUntil = sentAt + ttl * 1000;
      lease.on('keepaliveFired', () => (sentAt = performance.now()));
      lease.on('keepaliveSucceeded', (res) => (aliveUntil = sentAt + Number(res.TTL) * 1000));
      let id: string;
      try {
        id = await lease.grant();
      } catch (err) {
        ended = true;
        throw fail(err);
      }
      if (closed) {
        // close() ran while this was granted: it must not outlive the store.
        ended = true;
        await bounded(lease.revoke(deadline()));
        throw fail(new Error('store closed'));
      }
      leases.add(lease);
      const handle: Lease = {
        id,
        lost,
        aliveUntil: () => (ended ? 0 : aliveUntil),
        async put(key, value) {
          if (ended || lease.revoked()) throw new LeaseRevokedError(id);
          try {
            await client.kv.put({ key: full(key), value: Buffer.from(value), lease: id }, deadline());
          } catch (err) {
            if (err instanceof EtcdLeaseInvalidError) throw new LeaseRevokedError(id);
            throw fail(err);
          }
        },
        async create(key, value) {
          if (ended || lease.revoked()) throw new LeaseRevokedError(id);
          try {
            const res = await client.kv.txn(
              {
                compare: [{ key: full(key), target: 'Create', result: 'Equal', create_revision: '0' }],
                success: [{ request_put: { key: full(key), value: Buffer.from(value), lease: id } }],
                failure: [],
              },
              deadline(),
            );
            return res.succeeded ? BigInt(res.header.revision) : undefined;
          } catch (err) {
            if (err instanceof EtcdLeaseInvalidError) throw new LeaseRevokedError(id);
            throw fail(err);
          }
        },
        async revoke() {
          ended = true;
          leases.delete(lease);
          try {
            // Stops the keep-alive first, then asks etcd to revoke.
            await lease.revoke(deadline());
          } catch (err) {
            throw fail(err);
          }
        },
      };
      return handle;
    },
    async close() {
      if (closed) return;
      closed = true;
      // Revoke (not just release): keys go now rather than a TTL later, and
      // etcd3's client.close() would leave the keep-alive timers running.
      await Promise.all([...leases].map((lease) => bounded(lease.revoke(deadline()))));
      leases.clear();
      await Promise.all([...watches].map((cancel) => cancel()));
      client.close();
    },
  };
}
