// log_format with the built daemons: text writes one line per record for people,
// json one JSON object per line (also the default when stderr is not a terminal).
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, startDaemon, waitFor, writeYaml, type Daemon } from '../support/processes.js';

const TEXT_LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (TRACE|DEBUG|INFO |WARN |ERROR|FATAL) [a-z-]+: \S/;

describe('e2e: daemon log formats', function () {
  this.timeout(60_000);
  let dir: string;
  const daemons: Daemon[] = [];
  const lines = (d: Daemon) => d.log().split('\n').filter(Boolean);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sched-logfmt-'));
  });
  afterEach(async () => {
    await Promise.all(daemons.splice(0).map((d) => d.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  const manager = (format: string) => {
    const yaml = writeYaml(join(dir, 'manager.yaml'), `listen: 127.0.0.1:0\nstore: {type: embedded, path: ${join(dir, 'store')}}\nlog_format: ${format}\n`);
    const d = startDaemon(BIN.manager, ['-f', yaml], join(dir, 'manager.log'));
    daemons.push(d);
    return d;
  };

  it('log_format: text writes one human line per record, from the manager and the worker', async () => {
    const m = manager('text');
    const ready = await waitFor('the manager ready', () => lines(m).find((l) => l.includes('INFO  management-node: management node ready ')));
    expect(ready).to.match(TEXT_LINE);
    const port = /\bport=(\d+)\b/.exec(ready)![1];
    const wyaml = writeYaml(join(dir, 'worker.yaml'), `manager: 127.0.0.1:${port}\ndata_dir: ${join(dir, 'worker')}\nlog_format: text\n`);
    const w = startDaemon(BIN.worker, ['-f', wyaml], join(dir, 'worker.log'));
    daemons.push(w);
    await waitFor('the worker connected', () => lines(m).some((l) => / management-node: worker connected\b/.test(l)));
    await waitFor('the worker logged', () => lines(w).some((l) => / worker-node: /.test(l)));
    for (const l of [...lines(m), ...lines(w).filter((x) => / worker-node: /.test(x))]) expect(l).to.match(TEXT_LINE);
    expect(lines(m).some((l) => l.startsWith('{'))).to.equal(false);
  });

  it('log_format: json writes JSON lines', async () => {
    const m = manager('json');
    await waitFor('the manager ready', () => lines(m).some((l) => l.includes('"management node ready"')));
    for (const l of lines(m)) expect((JSON.parse(l) as { name: string }).name).to.equal('management-node');
  });
});
