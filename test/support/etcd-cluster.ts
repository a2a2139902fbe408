// Starts a real multi-member etcd cluster on loopback for high-availability
// fault tests: static bootstrapping on free ports picked before any member
// starts, one temp dir holding every member's data dir, and faults injected by
// pid only (SIGKILL, SIGSTOP/SIGCONT, restart on the same ports and data dir).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Etcd3, type IOptions } from 'etcd3';
import { cleanEnv, exited, findEtcd, freePorts, healthy, signal, tempDir, trackProcess, waitExit } from './etcd.js';

export interface EtcdMember {
  /** --name, m0, m1, … */
  readonly name: string;
  /** Client URL, http://127.0.0.1:P. */
  readonly clientUrl: string;
  /** Peer URL, http://127.0.0.1:Q. */
  readonly peerUrl: string;
  readonly dataDir: string;
  /** etcd's member ID (decimal, as etcd3 reports it in headers); set once startEtcdCluster returns. */
  readonly id: string;
  /** Pid of the current process; undefined while the member is not running. */
  readonly pid: number | undefined;
  /** The process is alive (it may be frozen). */
  readonly running: boolean;
  /** The process is stopped by SIGSTOP (see EtcdCluster.stop). */
  readonly frozen: boolean;
}

export interface EtcdClusterOptions {
  /** Number of members; default 3. */
  size?: number;
  /** --heartbeat-interval in ms; default 50. */
  heartbeatMs?: number;
  /** --election-timeout in ms; default 500. */
  electionMs?: number;
  /** How long startEtcdCluster waits for a healthy cluster; default 30 s. */
  startTimeoutMs?: number;
  /** Extra command-line flags for every member, appended last. */
  extraArgs?: string[];
}

export interface WaitOptions {
  /** Give up (throwing, with the members' log tails) after this long; default 15 s. */
  timeoutMs?: number;
}

export interface EtcdCluster {
  readonly members: readonly EtcdMember[];
  /** Client URLs of all members, running or not, in member order. */
  readonly endpoints: string[];
  /** The temp dir holding every member's data dir; close() removes it. */
  readonly dir: string;
  /**
   * The member that leads: it says it leads, and a majority of the cluster, asked with Status,
   * names it leader in the same term. Polls until so (a new election may be under way).
   */
  leader(opts?: WaitOptions): Promise<EtcdMember>;
  /** SIGKILL by pid; resolves once the process has exited. The data dir is kept for restart(). */
  kill9(m: EtcdMember): Promise<void>;
  /** SIGSTOP by pid (freezes the member); resolves once the kernel reports it stopped. */
  stop(m: EtcdMember): Promise<void>;
  /** SIGCONT by pid (thaws a stop()ped member); resolves once it runs again. */
  cont(m: EtcdMember): Promise<void>;
  /** Starts a member that is not running on its ports and data dir; resolves once it has rejoined and the cluster is healthy. */
  restart(m: EtcdMember, opts?: WaitOptions): Promise<void>;
  /**
   * Polls until every running, unfrozen member answers /health (a quorum read through it) and
   * they all name the same leader, which is one of them. Throws after the timeout.
   */
  waitHealthy(opts?: WaitOptions): Promise<void>;
  /**
   * An etcd3 client of the given members (default all) that fails fast: no retries or circuit
   * breakers, and every unary call has a deadline of callTimeoutMs (default 5000). close() closes it.
   */
  client(members?: EtcdMember | readonly EtcdMember[], opts?: { callTimeoutMs?: number }): Etcd3;
  /** The last lines of a member's log (stderr), for error messages. */
  tail(m: EtcdMember, lines?: number): string;
  /** What the member's current process has logged: its first and its last 16 KiB. */
  log(m: EtcdMember): string;
  /**
   * SIGTERM the followers, then the leader (SIGKILL after 3 s; a frozen member at once), wait
   * for the exits, close the clients, remove the data dirs. Idempotent.
   */
  close(): Promise<void>;
}

const STATUS_TIMEOUT_MS = 1000;
const POLL_MS = 50;
const STOP_GRACE_MS = 3000;
const LOG_TAIL_BYTES = 16 * 1024;
const LOG_HEAD_BYTES = 16 * 1024;

type FaultPolicy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;
/** etcd3's defaults retry calls and trip a 5 s circuit breaker per host; tests want each call to fail fast. */
const passThrough = {
  async execute<T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> {
    return fn({ signal: new AbortController().signal });
  },
} as unknown as FaultPolicy;

/** etcdClient is a fail-fast etcd3 client: no retries or circuit breakers, a deadline on every unary call. */
export function etcdClient(hosts: string | string[], callTimeoutMs = 5000): Etcd3 {
  return new Etcd3({
    hosts,
    faultHandling: { host: () => passThrough, global: passThrough },
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
  });
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The scheduler state letter of pid from /proc (T = stopped), or undefined if unknown. */
function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) || undefined;
  } catch {
    return undefined;
  }
}

/** Cluster dirs not yet removed by close(); removed if the test process exits first (the members themselves are killed by trackProcess). */
const openDirs = new Set<string>();
let exitHookInstalled = false;
function removeDirsOnExit(dir: string): void {
  openDirs.add(dir);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const d of openDirs) rmSync(d, { recursive: true, force: true });
  });
}

interface StatusReply {
  member: Member;
  id: string;
  leader: string;
  term: string;
}

class Member implements EtcdMember {
  id = '';
  frozen = false;
  /** Started by us and not killed by us since: exiting would be a crash. */
  wanted = false;
  child: ChildProcess | undefined;
  spawnError: Error | undefined;
  /** The first LOG_HEAD_BYTES of the current process's log, and the last LOG_TAIL_BYTES. */
  logHead = '';
  log = '';
  /** Characters logged by the current process. */
  logged = 0;
  private statusClient: Etcd3 | undefined;

  constructor(
    readonly name: string,
    readonly clientUrl: string,
    readonly peerUrl: string,
    readonly dataDir: string,
  ) {}

  get running(): boolean {
    return this.child !== undefined && this.child.pid !== undefined && !exited(this.child);
  }

  get pid(): number | undefined {
    return this.running ? this.child!.pid : undefined;
  }

  /** Running and not frozen: expected to answer. */
  get live(): boolean {
    return this.running && !this.frozen;
  }

  tail(lines = 30): string {
    return this.log.trimEnd().split('\n').slice(-lines).join('\n');
  }

  /** One Status call with a short deadline; undefined if the member does not answer. */
  async status(): Promise<StatusReply | undefined> {
    this.statusClient ??= etcdClient(this.clientUrl, STATUS_TIMEOUT_MS);
    try {
      const s = await this.statusClient.maintenance.status();
      return { member: this, id: String(s.header.member_id), leader: String(s.leader), term: String(s.raftTerm) };
    } catch {
      return undefined;
    }
  }

  closeClient(): void {
    this.statusClient?.close();
    this.statusClient = undefined;
  }
}

class Cluster implements EtcdCluster {
  readonly endpoints: string[];
  private readonly clients = new Set<Etcd3>();
  private closed = false;

  constructor(
    private readonly bin: string,
    readonly dir: string,
    readonly members: Member[],
    private readonly token: string,
    private readonly options: EtcdClusterOptions,
  ) {
    this.endpoints = members.map((m) => m.clientUrl);
  }

  private own(m: EtcdMember): Member {
    const member = this.members.find((x) => x === m);
    if (!member) throw new Error(`${m.name} is not a member of this cluster`);
    return member;
  }

  private args(m: Member): string[] {
    return [
      `--name=${m.name}`,
      `--data-dir=${m.dataDir}`,
      `--listen-client-urls=${m.clientUrl}`,
      `--advertise-client-urls=${m.clientUrl}`,
      `--listen-peer-urls=${m.peerUrl}`,
      `--initial-advertise-peer-urls=${m.peerUrl}`,
      `--initial-cluster=${this.members.map((x) => `${x.name}=${x.peerUrl}`).join(',')}`,
      // Ignored once the data dir holds a WAL: a restarted member comes back as itself.
      '--initial-cluster-state=new',
      `--initial-cluster-token=${this.token}`,
      `--heartbeat-interval=${this.options.heartbeatMs ?? 50}`,
      `--election-timeout=${this.options.electionMs ?? 500}`,
      // A thawed or restarted member does not depose a healthy leader (etcd 3.5's default).
      '--pre-vote=true',
      // Frequent snapshots and little disk: the raft log is cut often, every commit is still fsynced.
      '--snapshot-count=1000',
      '--max-snapshots=2',
      '--max-wals=2',
      `--quota-backend-bytes=${256 * 1024 * 1024}`,
      '--auto-compaction-mode=periodic',
      '--auto-compaction-retention=1m',
      '--logger=zap',
      '--log-outputs=stderr',
      '--log-level=info',
      ...(this.options.extraArgs ?? []),
    ];
  }

  /** Spawns m (not waiting for it); its log goes to m.log. */
  spawn(m: Member): void {
    m.frozen = false;
    m.wanted = true;
    m.spawnError = undefined;
    m.log = '';
    m.logHead = '';
    m.logged = 0;
    const child = spawn(this.bin, this.args(m), { stdio: ['ignore', 'ignore', 'pipe'], env: cleanEnv() });
    m.child = child;
    child.on('error', (err) => (m.spawnError = err));
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      m.logged += chunk.length;
      if (m.logHead.length < LOG_HEAD_BYTES) m.logHead = (m.logHead + chunk).slice(0, LOG_HEAD_BYTES);
      m.log = (m.log + chunk).slice(-LOG_TAIL_BYTES);
    });
    child.once('exit', () => {
      if (m.child === child) m.frozen = false;
    });
    trackProcess(child, this.dir);
  }

  /** Throws if m failed to spawn or exited (while it should be starting or running). */
  private checkAlive(m: Member, when: string): void {
    if (m.spawnError) {
      const code = (m.spawnError as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new Error('etcd not found: install Debian\'s etcd-server (apt-get install etcd-server)');
      throw new Error(`cannot start etcd member ${m.name}: ${m.spawnError.message}`);
    }
    if (m.wanted && m.child && exited(m.child)) {
      throw new Error(`etcd member ${m.name} exited ${when} (code ${m.child.exitCode}, signal ${m.child.signalCode}); log tail:\n${m.tail()}`);
    }
  }

  /** One round of Status calls to the live members; the leader if it says so and a majority agrees. */
  private async leaderOnce(): Promise<{ leader: Member | undefined; replies: StatusReply[]; why: string }> {
    const replies = (await Promise.all(this.members.filter((m) => m.live).map((m) => m.status()))).filter((r) => r !== undefined);
    for (const r of replies) if (!r.member.id) r.member.id = r.id;
    // A thawed old leader may still say it leads, in an older term, until it hears from the new one.
    const claims = replies.filter((r) => r.leader === r.id);
    if (!claims.length) return { leader: undefined, replies, why: 'no member says it leads' };
    const quorum = Math.floor(this.members.length / 2) + 1;
    const why: string[] = [];
    for (const self of claims) {
      const agree = replies.filter((r) => r.leader === self.id && r.term === self.term).length;
      if (agree >= quorum) return { leader: self.member, replies, why: '' };
      why.push(`${self.member.name} says it leads in term ${self.term}, but only ${agree} of the ${quorum} needed agree`);
    }
    return { leader: undefined, replies, why: why.join('; ') };
  }

  private describe(replies: StatusReply[]): string {
    const byMember = new Map(replies.map((r) => [r.member, r]));
    return this.members
      .map((m) => {
        const state = !m.running ? 'not running' : m.frozen ? 'frozen' : 'running';
        const r = byMember.get(m);
        const status = r ? `leader ${this.nameOf(r.leader)} term ${r.term}` : m.live ? 'no status' : '';
        return `${m.name} (${m.clientUrl}, pid ${m.pid ?? '-'}): ${state}${status ? `, ${status}` : ''}`;
      })
      .join('; ');
  }

  private nameOf(id: string): string {
    return this.members.find((m) => m.id === id)?.name ?? (id === '0' ? 'none' : id);
  }

  private tails(members: Member[]): string {
    return members.map((m) => `--- ${m.name} log tail:\n${m.tail(15)}`).join('\n');
  }

  async leader(opts: WaitOptions = {}): Promise<EtcdMember> {
    const timeoutMs = opts.timeoutMs ?? 15_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { leader, replies, why } = await this.leaderOnce();
      if (leader) return leader;
      if (Date.now() >= deadline) throw new Error(`etcd cluster: no leader within ${timeoutMs} ms (${why}): ${this.describe(replies)}`);
      await sleep(POLL_MS);
    }
  }

  async waitHealthy(opts: WaitOptions = {}): Promise<void> {
    const timeoutMs = opts.timeoutMs ?? 15_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (const m of this.members) this.checkAlive(m, 'while the cluster should be healthy');
      const live = this.members.filter((m) => m.live);
      const health = await Promise.all(live.map((m) => healthy(m.clientUrl)));
      const sick = live.filter((_, i) => !health[i]);
      let why = sick.length ? `not healthy: ${sick.map((m) => m.name).join(', ')}` : '';
      let replies: StatusReply[] = [];
      if (!why) {
        const once = await this.leaderOnce();
        replies = once.replies;
        if (!once.leader) why = once.why;
        else if (replies.length < live.length) why = 'not every live member answers Status';
        else if (!replies.every((r) => r.leader === once.leader!.id)) why = 'members disagree on the leader';
        else return;
      }
      if (Date.now() >= deadline) {
        if (!replies.length) replies = (await this.leaderOnce()).replies;
        throw new Error(`etcd cluster not healthy within ${timeoutMs} ms (${why}): ${this.describe(replies)}\n${this.tails(live)}`);
      }
      await sleep(POLL_MS);
    }
  }

  async kill9(m: EtcdMember): Promise<void> {
    const member = this.own(m);
    const child = member.child;
    member.wanted = false;
    if (!child || child.pid === undefined || exited(child)) return;
    signal(child.pid, 'SIGKILL');
    await waitExit(child);
    member.frozen = false;
    member.closeClient();
  }

  private async waitState(member: Member, stopped: boolean): Promise<void> {
    const pid = member.pid;
    if (pid === undefined) return;
    const deadline = Date.now() + 5000;
    for (;;) {
      const state = procState(pid);
      if (state === undefined || (state === 'T') === stopped) return;
      if (Date.now() >= deadline) throw new Error(`etcd member ${member.name} (pid ${pid}): state ${state}, not ${stopped ? 'stopped' : 'running'} within 5 s`);
      await sleep(5);
    }
  }

  async stop(m: EtcdMember): Promise<void> {
    const member = this.own(m);
    if (member.pid === undefined) throw new Error(`etcd member ${member.name} is not running`);
    signal(member.pid, 'SIGSTOP');
    member.frozen = true;
    await this.waitState(member, true);
  }

  async cont(m: EtcdMember): Promise<void> {
    const member = this.own(m);
    if (member.pid === undefined) throw new Error(`etcd member ${member.name} is not running`);
    signal(member.pid, 'SIGCONT');
    member.frozen = false;
    await this.waitState(member, false);
  }

  async restart(m: EtcdMember, opts: WaitOptions = {}): Promise<void> {
    const member = this.own(m);
    if (this.closed) throw new Error('etcd cluster is closed');
    if (member.running) throw new Error(`etcd member ${member.name} (pid ${member.pid}) is still running`);
    const timeoutMs = opts.timeoutMs ?? 15_000;
    const deadline = Date.now() + timeoutMs;
    member.closeClient();
    this.spawn(member);
    // Rejoined: a quorum read through it succeeds, then the whole cluster agrees on a leader.
    for (;;) {
      this.checkAlive(member, 'while restarting');
      if (await healthy(member.clientUrl)) break;
      if (Date.now() >= deadline) throw new Error(`etcd member ${member.name} not healthy within ${timeoutMs} ms after restart; log tail:\n${member.tail()}`);
      await sleep(POLL_MS);
    }
    await this.waitHealthy({ timeoutMs: Math.max(1000, deadline - Date.now()) });
  }

  client(members: EtcdMember | readonly EtcdMember[] = this.members, opts: { callTimeoutMs?: number } = {}): Etcd3 {
    const list = Array.isArray(members) ? (members as readonly EtcdMember[]) : [members as EtcdMember];
    if (list.length === 0) throw new Error('client: no members');
    const client = etcdClient(
      list.map((m) => this.own(m).clientUrl),
      opts.callTimeoutMs,
    );
    this.clients.add(client);
    return client;
  }

  tail(m: EtcdMember, lines?: number): string {
    return this.own(m).tail(lines);
  }

  log(m: EtcdMember): string {
    const { logHead, log, logged } = this.own(m);
    const after = logged - logHead.length; // characters logged after the head
    if (after <= 0) return logHead;
    return after <= log.length ? logHead + log.slice(log.length - after) : `${logHead}\n…\n${log}`;
  }

  /** Starts every member at once (each waits for its peers) and waits until the cluster is healthy. */
  async start(timeoutMs: number): Promise<void> {
    for (const m of this.members) this.spawn(m);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (const m of this.members) this.checkAlive(m, 'during startup');
      const health = await Promise.all(this.members.map((m) => healthy(m.clientUrl)));
      if (health.every(Boolean)) break;
      if (Date.now() >= deadline) {
        const sick = this.members.filter((_, i) => !health[i]);
        throw new Error(`etcd cluster not healthy within ${timeoutMs} ms (not healthy: ${sick.map((m) => m.name).join(', ')})\n${this.tails(this.members)}`);
      }
      await sleep(POLL_MS);
    }
    // Learns every member's ID, and that they agree on a leader.
    await this.waitHealthy({ timeoutMs: Math.max(1000, deadline - Date.now()) });
    const missing = this.members.filter((m) => !m.id);
    if (missing.length) throw new Error(`etcd cluster: no member ID for ${missing.map((m) => m.name).join(', ')}`);
  }

  /** SIGTERM, SIGKILL after the grace period (at once if frozen); resolves once m has exited. */
  private async terminate(m: Member): Promise<void> {
    m.wanted = false;
    m.closeClient();
    const child = m.child;
    if (!child || child.pid === undefined || exited(child)) return;
    const pid = child.pid;
    // A stopped process acts on SIGTERM only once continued, and then first on what it
    // missed (a frozen leader would try to hand over leadership): it is killed instead.
    const frozen = m.frozen;
    m.frozen = false;
    signal(pid, frozen ? 'SIGKILL' : 'SIGTERM');
    const timer = setTimeout(() => signal(pid, 'SIGKILL'), STOP_GRACE_MS);
    try {
      await waitExit(child);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const c of this.clients) c.close();
    this.clients.clear();
    // A leader told to stop first hands leadership to a follower and waits for it (up to
    // 5 s + 2 election timeouts), so the followers stop first: then it has none to hand to.
    const leader = this.members.some((m) => m.running) ? (await this.leaderOnce()).leader : undefined;
    await Promise.all(this.members.filter((m) => m !== leader).map((m) => this.terminate(m)));
    if (leader) await this.terminate(leader);
    for (const m of this.members) m.closeClient();
    await rm(this.dir, { recursive: true, force: true });
    openDirs.delete(this.dir);
  }
}

/**
 * startEtcdCluster starts a size-member etcd cluster (default 3) on free loopback ports, with
 * fast test timings, and resolves once every member is healthy and they agree on a leader.
 */
export async function startEtcdCluster(sizeOrOptions: number | EtcdClusterOptions = 3): Promise<EtcdCluster> {
  const options = typeof sizeOrOptions === 'number' ? { size: sizeOrOptions } : sizeOrOptions;
  const size = options.size ?? 3;
  if (!Number.isInteger(size) || size < 1) throw new Error(`etcd cluster size must be a positive integer, not ${size}`);
  const bin = findEtcd();
  // A port found free can be taken before etcd binds it; try fresh ports a few times.
  for (let attempt = 1; ; attempt++) {
    const ports = await freePorts(2 * size);
    const dir = await tempDir('sched-etcd-cluster-');
    removeDirsOnExit(dir);
    const members = Array.from(
      { length: size },
      (_, i) => new Member(`m${i}`, `http://127.0.0.1:${ports[2 * i]}`, `http://127.0.0.1:${ports[2 * i + 1]}`, join(dir, `m${i}`)),
    );
    const token = `sched-test-${randomBytes(6).toString('hex')}`;
    const cluster = new Cluster(bin, dir, members, token, options);
    try {
      await cluster.start(options.startTimeoutMs ?? 30_000);
      return cluster;
    } catch (err) {
      const portTaken = members.some((m) => /address already in use/i.test(m.log));
      await cluster.close();
      if (attempt < 3 && portTaken) continue;
      throw err;
    }
  }
}
