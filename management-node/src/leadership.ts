// Which of the managers sharing one etcd leads. Each manager holds a lease
// (leader_lease) and registers itself under managers/<id>; the first to
// create the key `leader` with its lease leads, until the lease ends (it
// stops, crashes, or is cut off past the TTL). The others are followers: they
// watch the key and campaign again when it goes.
//
// A leader's writes are fenced (fenced()): each carries a compare on the
// leader key's revision, its term, so a deposed leader changes nothing even
// if it does not know yet. And it acts only while its lease is certainly
// alive (mayAct(): the last renewal was answered less than a TTL ago, minus
// a margin): a leader frozen past its lease (SIGSTOP, a VM pause) finds that
// out from its own monotonic clock before it sends anything when it thaws.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { NotLeaderError, StoreUnavailableError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import { checkOps, type Lease, type Store, type TxnRequest } from './store/store.js';

export const LEADER_KEY = 'leader';
export const MANAGERS_PREFIX = 'managers/';
/** A leader stops acting this long before its lease could have run out. */
const SAFETY_MARGIN_MS = 500;

export type Role = 'leader' | 'follower' | 'candidate';

export interface ManagerInfo {
  id: string;
  /** host:port where workers and clients reach it. */
  address: string;
}

export interface LeadershipOptions {
  /** This manager's advertised address. */
  address: string;
  leaseMs: number;
  log: Logger;
  /** Called once, when this manager becomes the leader. */
  onElected: () => void;
  /** Called once, when a leader finds it may no longer lead (it must stop acting at once). */
  onDeposed: (why: string) => void;
}

const encode = (m: ManagerInfo): Uint8Array => Buffer.from(JSON.stringify({ id: m.id, address: m.address }));

function decode(value: Uint8Array | undefined): ManagerInfo | undefined {
  if (!value) return undefined;
  try {
    const v = JSON.parse(Buffer.from(value).toString()) as Partial<ManagerInfo>;
    return typeof v.id === 'string' && typeof v.address === 'string' ? { id: v.id, address: v.address } : undefined;
  } catch {
    return undefined;
  }
}

export class Leadership {
  readonly self: ManagerInfo;
  role: Role = 'candidate';
  /** The leader as last seen (this manager when it leads). */
  leader: ManagerInfo | undefined;
  /** The store revision at which the current leader was elected; 0n when none is known. */
  term = 0n;
  /** Every manager registered in the store, by id. */
  readonly managers = new Map<string, string>();
  private lease: Lease | undefined;
  private cancelWatch: (() => Promise<void>) | undefined;
  private stopped = false;
  private campaigning = false;
  private deposedWhy: string | undefined;

  constructor(
    private readonly store: Store,
    private readonly o: LeadershipOptions,
  ) {
    this.self = { id: `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`, address: o.address };
  }

  /** Watches the leader and the registry, registers this manager and campaigns. Rejects only if the store cannot be reached. */
  async start(): Promise<void> {
    const leaderWatch = await this.store.watch(LEADER_KEY, (e) => {
      if (e.key !== LEADER_KEY) return;
      if (e.type === 'delete') {
        if (this.role === 'leader') this.depose('the leader key was deleted (lease expired or revoked)');
        else void this.campaign();
      } else if (this.role !== 'leader') this.follow(decode(e.value), e.modRevision);
    });
    const registryWatch = await this.store.watch(MANAGERS_PREFIX, (e) => {
      const info = e.type === 'put' ? decode(e.value) : undefined;
      if (info) this.managers.set(e.key.slice(MANAGERS_PREFIX.length), info.address);
      else this.managers.delete(e.key.slice(MANAGERS_PREFIX.length));
    });
    this.cancelWatch = () => Promise.all([leaderWatch(), registryWatch()]).then(() => undefined);
    for (const kv of await this.store.range(MANAGERS_PREFIX)) {
      const info = decode(kv.value);
      if (info) this.managers.set(info.id, info.address);
    }
    await this.newLease();
    await this.campaign();
  }

  get isLeader(): boolean {
    return this.role === 'leader' && this.deposedWhy === undefined;
  }

  /** True while this manager leads and its lease is certainly alive; a leader past that is deposed. */
  mayAct(): boolean {
    if (!this.isLeader) return false;
    const left = (this.lease?.aliveUntil() ?? 0) - performance.now();
    if (left > SAFETY_MARGIN_MS) return true;
    this.depose(`its lease may have expired (no renewal answered for the last ${this.o.leaseMs} ms: frozen or cut off from etcd)`);
    return false;
  }

  /** The error for a request this manager must not serve: it names the leader when one is known. */
  notLeader(): NotLeaderError {
    return new NotLeaderError(this.leader && this.leader.id !== this.self.id ? this.leader.address : undefined);
  }

  /**
   * The store as this leader may write it: every commit and txn also
   * compares the leader key with this term, and a write that finds another
   * term changes nothing and deposes this manager.
   */
  fenced(): Store {
    const inner = this.store;
    const fence = () => ({ key: LEADER_KEY, modRevision: this.term });
    const txn = async (request: TxnRequest) => {
      if (!this.isLeader) throw new StoreUnavailableError('this manager no longer leads; it writes nothing');
      const result = await inner.txn({ compare: [...request.compare, fence()], ops: request.ops });
      if (!result.succeeded) {
        const kv = await inner.getWithRevision(LEADER_KEY).catch(() => undefined);
        if (kv?.modRevision !== this.term) {
          this.depose('a write found another term in the store');
          throw new StoreUnavailableError('this manager no longer leads; it writes nothing');
        }
      }
      return result;
    };
    return {
      description: inner.description,
      get: (key) => inner.get(key),
      getWithRevision: (key) => inner.getWithRevision(key),
      range: (prefix, options) => inner.range(prefix, options),
      watch: (prefix, onEvent, onError) => inner.watch(prefix, onEvent, onError),
      grantLease: (ttlMs) => inner.grantLease(ttlMs),
      close: () => inner.close(),
      txn,
      async commit(ops) {
        checkOps(ops);
        const result = await txn({ compare: [], ops });
        // Not applied, yet the term held when read back: nothing was stored, so say so.
        if (!result.succeeded) throw new StoreUnavailableError('the write was not applied; retrying');
        return result.revision;
      },
    };
  }

  /** Gives leadership up at once (revokes the lease: a follower takes over without waiting for the TTL). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.cancelWatch?.().catch(() => undefined);
    await this.lease?.revoke().catch(() => undefined);
  }

  private async newLease(): Promise<void> {
    const lease = (this.lease = await this.store.grantLease(this.o.leaseMs));
    await lease.put(`${MANAGERS_PREFIX}${this.self.id}`, encode(this.self));
    void lease.lost.then((err) => {
      if (this.lease !== lease || this.stopped) return;
      if (this.role === 'leader') return this.depose(`its lease was lost: ${err.message}`);
      this.o.log.warn({ err: err.message }, 'lease lost; taking a new one');
      this.retry(() => this.newLease().then(() => this.campaign()));
    });
  }

  /** Tries to become the leader; else follows the one there is. */
  private async campaign(): Promise<void> {
    if (this.stopped || this.role === 'leader' || this.campaigning || !this.lease) return;
    this.campaigning = true;
    try {
      for (;;) {
        const term = await this.lease.create(LEADER_KEY, encode(this.self));
        if (term !== undefined) return this.elected(term);
        const kv = await this.store.getWithRevision(LEADER_KEY);
        if (!kv) continue; // gone meanwhile: try again
        const info = decode(kv.value);
        // Created by this manager's own earlier try (its answer was lost): it leads.
        if (info?.id === this.self.id) return this.elected(kv.modRevision);
        if (info?.address === this.self.address) {
          // Left by this manager's previous run, whose lease has not run out yet: that process is
          // gone (this one holds its port), so the key goes now rather than a TTL later. Fencing
          // keeps even a misconfigured twin (two managers advertising one address) from acting.
          this.o.log.info({ term: String(kv.modRevision), previous: info.id }, "taking over from this manager's previous run");
          await this.store.txn({ compare: [{ key: LEADER_KEY, modRevision: kv.modRevision }], ops: [{ key: LEADER_KEY, value: null }] });
          continue;
        }
        return this.follow(info, kv.modRevision);
      }
    } catch (err) {
      this.o.log.warn({ err }, 'campaign failed; trying again');
      this.retry(() => this.campaign());
    } finally {
      this.campaigning = false;
    }
  }

  private elected(term: bigint): void {
    this.role = 'leader';
    this.term = term;
    this.leader = this.self;
    this.o.log.info({ term: String(term), address: this.self.address }, 'elected leader');
    this.o.onElected();
  }

  private follow(info: ManagerInfo | undefined, term: bigint): void {
    const changed = info?.id !== this.leader?.id;
    this.role = 'follower';
    this.leader = info;
    this.term = term;
    if (changed) this.o.log.info({ leader: info?.address ?? 'unknown', term: String(term) }, 'following the leader');
  }

  private depose(why: string): void {
    if (this.deposedWhy !== undefined) return;
    this.deposedWhy = why;
    this.o.log.error({ term: String(this.term) }, `no longer the leader: ${why}`);
    this.o.onDeposed(why);
  }

  private retry(fn: () => Promise<void>): void {
    if (this.stopped) return;
    setTimeout(() => void fn().catch((err: unknown) => this.o.log.warn({ err }, 'leadership step failed')), Math.min(1000, this.o.leaseMs / 3)).unref();
  }
}
