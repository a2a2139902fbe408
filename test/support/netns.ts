// Network namespaces for e2e tests that need a real network between the
// manager and a worker: here, a worker behind NAT.
//
// The topology is three namespaces joined by two veth pairs, all made by the
// test and removed by it:
//
//   mgr ns                      rtr ns ("home router")            wrk ns
//   manager  10.X.Y.2/30 ─veth─ 10.X.Y.1/30   10.X.Y.5/30 ─veth─ 10.X.Y.6/30  worker
//            (public side)      MASQUERADE out the public side    default route
//                               FORWARD: only replies come back    via 10.X.Y.5
//
// The router is a namespace of its own rather than the host so that nothing
// in the machine's own network namespace changes: no host iptables rule, no
// host ip_forward (that sysctl is per namespace), no interface on the host.
// Deleting the three namespaces removes every veth, address, route and rule
// with them. Each run derives its names and subnet from its pid, so parallel
// runs do not collide (the namespaces are separate stacks in any case).
//
// Root only: callers check natUnsupportedReason() first and skip with it.
import { spawnSync } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { run, startDaemon, waitFor, type Daemon, type RunResult } from './processes.js';

/** Thrown when this machine cannot build the topology (not a test failure: the caller skips). */
export class NatUnavailable extends Error {}

export interface NatTopology {
  /** Namespace names. */
  readonly mgrNs: string;
  readonly rtrNs: string;
  readonly wrkNs: string;
  /** The manager's address in mgrNs: what the worker dials. */
  readonly managerIp: string;
  /** The router's address on the manager's side: the only source address the manager ever sees from the worker. */
  readonly routerPublicIp: string;
  /** The router's address on the worker's side (the worker's default gateway). */
  readonly routerPrivateIp: string;
  /** The worker's private address, in wrkNs. */
  readonly workerIp: string;
  /** argv for `ip` that runs cmd inside ns: `ip netns exec ns cmd...` (ip execs, so the pid is cmd's). */
  execArgs(ns: string, cmd: string, ...args: string[]): string[];
  /** Deletes the namespaces (and with them everything inside); idempotent, never throws. */
  remove(): Promise<void>;
}

const COMMAND_TIMEOUT_MS = 10_000;
/** Where Debian keeps ip and iptables; a non-login root shell may not have them on PATH. */
const SBIN = ['/usr/sbin', '/sbin'];

/** findCommand resolves name on PATH (plus the sbin folders) to an executable path. */
export function findCommand(name: string): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), ...SBIN];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Why the NAT topology cannot be built here, or undefined when it can be tried. */
export function natUnsupportedReason(): string | undefined {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'needs root (ip netns, veth and iptables)';
  if (!findCommand('ip')) return "'ip' not found (install Debian's iproute2)";
  if (!findCommand('iptables')) return "'iptables' not found (install Debian's iptables)";
  return undefined;
}

/** Namespaces created and not yet deleted; removed on process exit if an after hook never ran. */
const liveNamespaces = new Set<string>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    const ip = findCommand('ip');
    if (!ip) return;
    for (const ns of liveNamespaces) spawnSync(ip, ['netns', 'del', ns], { stdio: 'ignore', timeout: COMMAND_TIMEOUT_MS });
  });
}

let created = 0;

/**
 * createNatTopology builds mgr ⇄ rtr (NAT) ⇄ wrk. On any failure it removes
 * what it made and throws NatUnavailable with the failing command and its
 * stderr, so the caller can skip with an exact reason.
 */
export async function createNatTopology(): Promise<NatTopology> {
  const ip = findCommand('ip');
  const iptables = findCommand('iptables');
  if (!ip || !iptables) throw new NatUnavailable(natUnsupportedReason() ?? 'ip or iptables not found');
  installExitHook();

  // One /29 per topology, in 10.200.0.0–10.249.255.255, from the pid and a
  // per-process counter: .0/30 is the public link, .4/30 the private one.
  const key = (process.pid * 4 + created++) % (50 * 64 * 256);
  const second = 200 + Math.floor(key / (64 * 256));
  const third = Math.floor(key / 64) % 256;
  const base = (key % 64) * 4;
  const addr = (n: number) => `10.${second}.${third}.${base + n}`;
  const tag = `${process.pid}-${created}`;
  const mgrNs = `sched-nat-${tag}-mgr`;
  const rtrNs = `sched-nat-${tag}-rtr`;
  const wrkNs = `sched-nat-${tag}-wrk`;
  // Interface names: at most 15 characters; the key keeps them unique per run.
  const rtrPub = `sn${key}rp`;
  const rtrPrv = `sn${key}rw`;
  const mgrIf = `sn${key}m`;
  const wrkIf = `sn${key}w`;
  const managerIp = addr(2);
  const routerPublicIp = addr(1);
  const routerPrivateIp = addr(5);
  const workerIp = addr(6);
  const privateNet = `${addr(4)}/30`;

  const made: string[] = [];
  const topology: NatTopology = {
    mgrNs,
    rtrNs,
    wrkNs,
    managerIp,
    routerPublicIp,
    routerPrivateIp,
    workerIp,
    execArgs: (ns, cmd, ...args) => ['netns', 'exec', ns, cmd, ...args],
    async remove() {
      // Processes still inside keep a namespace alive after `ip netns del`
      // (it is only unnamed), so callers stop theirs first.
      for (const ns of made.splice(0).reverse()) {
        try {
          await run(ip, ['netns', 'del', ns], { timeoutMs: COMMAND_TIMEOUT_MS });
        } catch {
          // best effort: the exit hook tries again
          continue;
        }
        liveNamespaces.delete(ns);
      }
    },
  };

  const must = async (bin: string, args: string[]): Promise<RunResult> => {
    const r = await run(bin, args, { timeoutMs: COMMAND_TIMEOUT_MS });
    if (r.code !== 0) throw new NatUnavailable(`'${[bin, ...args].join(' ')}' failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
    return r;
  };
  const inNs = (ns: string, bin: string, ...args: string[]) => must(ip, ['netns', 'exec', ns, bin, ...args]);

  try {
    for (const ns of [mgrNs, rtrNs, wrkNs]) {
      await must(ip, ['netns', 'add', ns]);
      made.push(ns);
      liveNamespaces.add(ns);
      await must(ip, ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    // Each veth end is created directly inside its namespace: nothing appears on the host.
    await must(ip, ['link', 'add', rtrPub, 'netns', rtrNs, 'type', 'veth', 'peer', 'name', mgrIf, 'netns', mgrNs]);
    await must(ip, ['link', 'add', rtrPrv, 'netns', rtrNs, 'type', 'veth', 'peer', 'name', wrkIf, 'netns', wrkNs]);
    const ends: Array<[string, string, string]> = [
      [rtrNs, rtrPub, routerPublicIp],
      [mgrNs, mgrIf, managerIp],
      [rtrNs, rtrPrv, routerPrivateIp],
      [wrkNs, wrkIf, workerIp],
    ];
    for (const [ns, dev, address] of ends) {
      await must(ip, ['-n', ns, 'addr', 'add', `${address}/30`, 'dev', dev]);
      await must(ip, ['-n', ns, 'link', 'set', dev, 'up']);
    }
    // The worker's only way out is the router.
    await must(ip, ['-n', wrkNs, 'route', 'add', 'default', 'via', routerPrivateIp]);
    // The manager side does know a route to the private network, so when it
    // cannot connect to the worker that is the router's doing (NAT with a
    // stateful firewall), not merely a missing route.
    await must(ip, ['-n', mgrNs, 'route', 'add', privateNet, 'via', routerPublicIp]);
    // Forwarding is enabled in the router namespace only (the sysctl is per namespace).
    await inNs(rtrNs, 'sh', '-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward');
    // A home router: connections from inside go out with the router's public
    // address; from outside, only replies to those come back in.
    await inNs(rtrNs, iptables, '-t', 'nat', '-A', 'POSTROUTING', '-s', privateNet, '-o', rtrPub, '-j', 'MASQUERADE');
    await inNs(rtrNs, iptables, '-P', 'FORWARD', 'DROP');
    await inNs(rtrNs, iptables, '-A', 'FORWARD', '-i', rtrPrv, '-o', rtrPub, '-j', 'ACCEPT');
    await inNs(rtrNs, iptables, '-A', 'FORWARD', '-i', rtrPub, '-o', rtrPrv, '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT');
  } catch (err) {
    await topology.remove();
    throw err instanceof NatUnavailable ? err : new NatUnavailable(`cannot build the NAT topology: ${String(err)}`);
  }
  return topology;
}

export type ProbeResult = 'connected' | 'refused' | 'timeout' | 'unreachable' | `error: ${string}`;

/**
 * tcpProbe tries one TCP connection from inside ns to host:port and says how
 * it ended; a silent drop shows as 'timeout' after timeoutMs.
 */
export async function tcpProbe(net: NatTopology, ns: string, host: string, port: number, timeoutMs = 2000): Promise<ProbeResult> {
  const script = `
    const [host, port, ms] = process.argv.slice(1);
    const s = require('node:net').connect({ host, port: Number(port) });
    const done = (r) => { console.log(r); s.destroy(); process.exit(0); };
    s.setTimeout(Number(ms), () => done('timeout'));
    s.on('connect', () => done('connected'));
    s.on('error', (e) => done(e.code === 'ECONNREFUSED' ? 'refused' : /UNREACH/.test(e.code) ? 'unreachable' : 'error: ' + e.code));`;
  const r = await run(findCommand('ip') ?? 'ip', net.execArgs(ns, process.execPath, '-e', script, host, String(port), String(timeoutMs)), {
    timeoutMs: timeoutMs + COMMAND_TIMEOUT_MS,
  });
  const out = r.stdout.trim();
  if (r.code !== 0 || !out) return `error: probe exited ${r.code}: ${r.stderr.trim()}`;
  return out as ProbeResult;
}

/** listenIn starts a TCP server on 0.0.0.0:port inside ns and resolves once it listens; stop it with Daemon.stop. */
export async function listenIn(net: NatTopology, ns: string, port: number, logFile: string): Promise<Daemon> {
  const script = `require('node:net').createServer((s) => s.end('hello\\n')).listen(Number(process.argv[1]), '0.0.0.0', () => console.log('listening'));`;
  const d = startDaemon(findCommand('ip') ?? 'ip', net.execArgs(ns, process.execPath, '-e', script, String(port)), logFile);
  try {
    await waitFor(`listener in ${ns}`, () => d.log().includes('listening'), 5000, 50);
  } catch (err) {
    await d.stop();
    throw err;
  }
  return d;
}
