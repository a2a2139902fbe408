// A worker behind NAT, end to end: the built manager runs in one network
// namespace, the built worker in another, and a third namespace between them
// is the NAT router (MASQUERADE, replies only back in). The worker dials out
// to the manager; nothing can dial in to the worker. It must still register,
// run a task and stream that task's logs back, all over its own connection.
//
// Needs root, iproute2 and iptables (`make test-e2e` installs the latter two
// with apt when it can); elsewhere the suite is skipped with the reason printed.
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, run, startDaemon, waitFor, writeYaml, type Daemon } from '../support/processes.js';
import { NatUnavailable, createNatTopology, findCommand, listenIn, natUnsupportedReason, tcpProbe, type NatTopology } from '../support/netns.js';

const MANAGER_PORT = 7070;
/** A port the worker namespace listens on, to show it cannot be reached from the manager's side. */
const PROBE_PORT = 7171;
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;

describe('e2e: a worker behind NAT (network namespaces)', function () {
  this.timeout(120_000);
  let net: NatTopology | undefined;
  let dir: string | undefined;
  let workerId = '';
  let natTask: Promise<string> | undefined;
  const daemons: Daemon[] = [];
  const hostForwarding = readForwarding();

  const ip = () => findCommand('ip') ?? 'ip';
  /** schedctl runs on the manager's side of the NAT, as an operator there would. */
  const ctl = (...args: string[]) =>
    run(ip(), net!.execArgs(net!.mgrNs, BIN.schedctl, '--manager', `${net!.managerIp}:${MANAGER_PORT}`, ...args), { timeoutMs: 20_000 });
  const startIn = (ns: string, bin: string, yaml: string, log: string) => {
    const d = startDaemon(ip(), net!.execArgs(ns, bin, '-f', yaml), join(dir!, log));
    daemons.push(d);
    return d;
  };
  /**
   * The task both task tests look at, run on the NATed worker the first time one of them asks
   * (so either runs alone): its id, once `tasks run --wait` exited 0.
   */
  const ranTask = () =>
    (natTask ??= (async () => {
      const r = await ctl('tasks', 'run', '--wait', '--', 'sh', '-c', 'echo hello-from-nat; echo err >&2');
      expect(r.code, r.stderr).to.equal(0);
      const id = r.stdout.match(UUID)?.[0] ?? '';
      expect(id, r.stdout).to.not.equal('');
      return id;
    })());
  const workerRow = async () => {
    const r = await ctl('-o', 'wide', 'workers', 'ls');
    if (r.code !== 0) throw new Error(r.stderr);
    return r.stdout.split('\n').find((l) => l.startsWith(workerId) && /\bconnected\b/.test(l));
  };

  before(async function () {
    const reason = natUnsupportedReason();
    if (reason) {
      console.log(`      skipped: ${reason}`);
      this.skip();
    }
    try {
      net = await createNatTopology();
    } catch (err) {
      if (!(err instanceof NatUnavailable)) throw err;
      console.log(`      skipped: this machine cannot build the NAT namespaces: ${err.message}`);
      this.skip();
    }
    dir = mkdtempSync(join(tmpdir(), 'sched-nat-'));
    const managerYaml = writeYaml(
      join(dir, 'manager.yaml'),
      // Only on the manager's side of the NAT: not 0.0.0.0, not loopback.
      `listen: ${net.managerIp}:${MANAGER_PORT}\nstore: {type: embedded, path: ${join(dir, 'store')}}\nping_interval: 300ms\n`,
    );
    const workerYaml = writeYaml(
      join(dir, 'worker.yaml'),
      `manager: ${net.managerIp}:${MANAGER_PORT}\ndata_dir: ${join(dir, 'worker')}\nreconnect_interval: 200ms\n`,
    );
    startIn(net.mgrNs, BIN.manager, managerYaml, 'manager.log');
    const worker = startIn(net.wrkNs, BIN.worker, workerYaml, 'worker.log');
    workerId = await waitFor('worker id', () => {
      try {
        return readFileSync(join(dir!, 'worker', 'worker-id'), 'utf8').trim();
      } catch {
        return undefined;
      }
    });
    await waitFor('the NATed worker connected', workerRow, 20_000, 200).catch((err: Error) => {
      throw new Error(`${err.message}\n--- worker log ---\n${worker.log().slice(-2000)}`);
    });
  });

  after(async () => {
    // Processes first (a namespace with a process in it outlives `ip netns del`), then the namespaces, then files.
    try {
      await Promise.all(daemons.map((d) => d.stop()));
    } finally {
      try {
        await net?.remove();
      } finally {
        if (dir) rmSync(dir, { recursive: true, force: true });
      }
    }
  });

  it('leaves the host network alone: no ip_forward change', () => {
    expect(readForwarding()).to.equal(hostForwarding);
  });

  it('the worker registers, and the manager sees it at the router\'s address, not its private one', async () => {
    const r = await ctl('-o', 'wide', 'workers', 'ls');
    expect(r.code, r.stderr).to.equal(0);
    const row = r.stdout.split('\n').find((l) => l.startsWith(workerId));
    expect(row, r.stdout).to.be.a('string');
    expect(row).to.match(/\bconnected\b/);
    expect(row).to.include(`${net!.routerPublicIp}:`);
    expect(row).not.to.include(net!.workerIp);
  });

  it('the manager\'s side cannot open a connection to the worker; the worker\'s LAN can', async () => {
    const listener = await listenIn(net!, net!.wrkNs, PROBE_PORT, join(dir!, 'listener.log'));
    daemons.push(listener);
    // Control: the listener is up and reachable from the router, on the worker's side of the NAT.
    expect(await tcpProbe(net!, net!.rtrNs, net!.workerIp, PROBE_PORT)).to.equal('connected');
    // From the manager's namespace (which has a route to the private network):
    // the router drops new inbound connections, so the SYN goes unanswered.
    expect(await tcpProbe(net!, net!.mgrNs, net!.workerIp, PROBE_PORT, 1500)).to.equal('timeout');
    // And no port is forwarded from the router's public address.
    expect(await tcpProbe(net!, net!.mgrNs, net!.routerPublicIp, PROBE_PORT, 1500)).not.to.equal('connected');
    await listener.stop();
  });

  it('runs a task on the NATed worker: tasks run --wait exits 0', async () => {
    const taskId = await ranTask();
    const show = await ctl('tasks', 'show', taskId, '-o', 'json');
    expect(show.code, show.stderr).to.equal(0);
    const task = JSON.parse(show.stdout) as { state?: string; workerId?: string; exitCode?: number };
    expect(task.state).to.equal('TASK_STATE_DONE');
    expect(task.workerId).to.equal(workerId);
  });

  it('streams the task\'s stdout and stderr back through the manager (tasks logs)', async () => {
    const taskId = await ranTask();
    const out = await ctl('tasks', 'logs', taskId);
    expect(out.code, out.stderr).to.equal(0);
    expect(out.stdout).to.include('hello-from-nat');
    expect(out.stdout).not.to.match(/^err$/m);
    const err = await ctl('tasks', 'logs', '--stderr', taskId);
    expect(err.code, err.stderr).to.equal(0);
    expect(err.stdout).to.match(/^err$/m);
    expect(err.stdout).not.to.include('hello-from-nat');
  });
});

/** The host namespace's net.ipv4.ip_forward, to show the test never touches it. */
function readForwarding(): string {
  try {
    return readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}
