// make testbed: the high-availability topology as local processes on
// loopback (no Docker needed): a 3-member etcd cluster, 3 managers and 3
// workers. It prints who leads and the commands to try, then waits; Ctrl-C
// stops everything (by pid) and removes its directory. The same topology in
// containers is testbed/docker-compose.yml.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEtcdCluster } from '../test/support/etcd-cluster.js';
import { BIN, startDaemon, startManager, waitFor, writeYaml, type Daemon } from '../test/support/processes.js';

const MANAGERS = 3;
const WORKERS = 3;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sched-testbed-'));
  const daemons: Daemon[] = [];
  console.log(`testbed: starting in ${dir}`);
  const etcd = await startEtcdCluster(3);
  // However this process ends (a second Ctrl-C, a signal handler of the etcd support exiting first), nothing is left behind.
  process.on('exit', () => {
    for (const d of daemons) {
      try {
        process.kill(d.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const stop = async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    await etcd.close();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const store = `{type: etcd, endpoints: [${etcd.endpoints.map((e) => `"${e}"`).join(', ')}], prefix: /testbed/}`;
    const managers: Array<{ address: string; daemon: Daemon; log: string }> = [];
    for (let n = 1; n <= MANAGERS; n++) {
      const log = join(dir, `manager-${n}.log`);
      const m = await startManager({ config: `store: ${store}\nlog_level: info\n`, yamlFile: join(dir, `manager-${n}.yaml`), logFile: log, until: 'listening' });
      daemons.push(m.daemon);
      managers.push({ address: m.address, daemon: m.daemon, log });
    }
    const list = managers.map((m) => m.address).join(',');
    for (let n = 1; n <= WORKERS; n++) {
      const yaml = writeYaml(join(dir, `worker-${n}.yaml`), `managers: [${list}]\ndata_dir: ${join(dir, `worker-${n}`)}\nlabels: {testbed: worker-${n}}\nlog_level: info\n`);
      daemons.push(startDaemon(BIN.worker, ['-f', yaml], join(dir, `worker-${n}.log`)));
    }
    const leader = await waitFor('a leader', () => managers.find((m) => m.daemon.log().includes('"msg":"management node ready"')), 30_000);
    const ctl = join(dir, 'schedctl.yaml');
    writeFileSync(ctl, `manager: ${list}\ntimeout: 10s\n`);
    const schedctl = `${BIN.schedctl} -c ${ctl}`;
    console.log(`
etcd members   ${etcd.endpoints.join(' ')}
managers       ${managers.map((m) => `${m.address} (pid ${m.daemon.pid})`).join('  ')}
leader         ${leader.address} (pid ${leader.daemon.pid})
workers        ${daemons.slice(MANAGERS).map((d) => `pid ${d.pid}`).join('  ')}
logs           ${dir}/*.log

Try, in another terminal:
  ${schedctl} status
  ${schedctl} workers ls
  ${schedctl} tasks run --wait -- echo hello
  kill -9 ${leader.daemon.pid}            # the leader: a follower takes over within leader_lease (3 s)
  ${schedctl} status                      # names the new leader
  ${schedctl} tasks run --wait -- echo still here

Ctrl-C stops everything.`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
  } finally {
    console.log('testbed: stopping');
    await stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`testbed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
