// Which manager the worker dials next. Several managers may run against one
// store; one leads, and the others refuse every stream with NotLeaderError,
// naming the leader when they know it. The worker dials one address at a time:
// it follows a named leader at once (a few times in a row at most, so two
// managers naming each other cannot make a hot loop), otherwise moves round
// robin through the configured list, and backs off only once a whole round has
// failed, so a dead manager in front of a live one costs no delay.
// Pure: no I/O, no timers (session.ts acts on the answers).
import { status as grpcStatus, type StatusObject } from '@grpc/grpc-js';

/** Leader hints followed in a row without a Welcome before a refusal counts as a plain failure. */
export const MAX_LEADER_FOLLOWS = 3;

/**
 * Exponential backoff with jitter: base·2^failures capped at max, then a random
 * 50-100% of it, so a fleet that lost its manager does not redial in lockstep.
 */
export function redialDelay(failures: number, baseMs: number, maxMs: number, random = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(failures, 30));
  return Math.round(ceiling * (0.5 + 0.5 * random()));
}

export interface Failure {
  /** The leader the refusal named (leaderHint), if any. */
  leader?: string | undefined;
  /** The stream had a Welcome: an outage starts. */
  welcomed?: boolean;
  /** Refused as not the leader (with or without a hint). */
  notLeader?: boolean;
}

export interface NextDial {
  /** The address to dial next. */
  address: string;
  /** Dial after a backoff pause (true) or at once. */
  pause: boolean;
  /** Set when the next dial follows a leader hint. */
  following?: { leader: string; refusedBy: string };
}

export class ManagerList {
  private readonly configured: readonly string[];
  private address: string;
  /** Index in `configured` of the last configured address dialled: round robin goes on from there. */
  private cursor = 0;
  /** Configured addresses that failed since the last pause (or Welcome): all of them make a round. */
  private readonly tried = new Set<string>();
  /** Leader hints followed since the last Welcome or pause. */
  private follows = 0;

  constructor(
    addresses: readonly string[],
    private readonly maxFollows = MAX_LEADER_FOLLOWS,
  ) {
    if (addresses.length === 0) throw new Error('no manager address');
    this.configured = [...new Set(addresses)];
    this.address = this.configured[0]!;
  }

  /** The address to dial now. */
  get current(): string {
    return this.address;
  }

  get addresses(): readonly string[] {
    return this.configured;
  }

  /** A Welcome from the current address: it is dialled first after the next loss; rounds and hints start over. */
  welcomed(): void {
    this.tried.clear();
    this.follows = 0;
  }

  /** The stream to the current address failed or was lost: where to go next, and whether to back off first. */
  failed(f: Failure = {}): NextDial {
    const from = this.address;
    const index = this.configured.indexOf(from);
    if (index >= 0) this.cursor = index;
    if (f.leader && f.leader !== from && this.follows < this.maxFollows) {
      this.follows++;
      if (index >= 0) this.tried.add(from);
      this.address = f.leader;
      return { address: f.leader, pause: false, following: { leader: f.leader, refusedBy: from } };
    }
    if (f.welcomed && !f.notLeader) {
      // The manager that led may be back in a moment (a restart, a blip): it is tried first, after the base pause.
      return this.pause(from);
    }
    if (index >= 0) this.tried.add(from);
    this.cursor = (this.cursor + 1) % this.configured.length;
    const next = this.configured[this.cursor]!;
    if (this.configured.every((a) => this.tried.has(a))) return this.pause(next);
    this.address = next;
    return { address: next, pause: false };
  }

  private pause(next: string): NextDial {
    this.tried.clear();
    this.follows = 0;
    this.address = next;
    return { address: next, pause: true };
  }
}

/** One client per address, made on first use. Clients for addresses only a leader hint named are few: the oldest unused goes. */
export class ClientPool<C extends { close(): void }> {
  private readonly clients = new Map<string, C>();

  constructor(
    private readonly make: (address: string) => C,
    private readonly configured: readonly string[],
    private readonly maxExtra = 4,
  ) {}

  get(address: string): C {
    let client = this.clients.get(address);
    if (client) return client;
    if (!this.configured.includes(address)) {
      const extra = [...this.clients.keys()].filter((a) => !this.configured.includes(a));
      for (const a of extra.slice(0, Math.max(0, extra.length - this.maxExtra + 1))) {
        this.clients.get(a)!.close();
        this.clients.delete(a);
      }
    }
    client = this.make(address);
    this.clients.set(address, client);
    return client;
  }

  get size(): number {
    return this.clients.size;
  }

  closeAll(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}

/** "UNAVAILABLE: connect ECONNREFUSED 10.0.0.1:7070" rather than grpc-js's long-winded details of why a dial failed. */
export function describeStatus({ code, details, message }: Partial<StatusObject & Error>): string {
  const text = (details ?? message ?? '').replace(/^No connection established\. Last error: (?:Error: )?/, '').replace(/\.? Resolution note:.*$/, '');
  return code === undefined ? text : `${grpcStatus[code]}: ${text || 'no details'}`;
}
