import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ConfigError } from '../../common/config.js';
import { parseWorkerConfig } from '../../worker-node/src/config.js';
import { loadWorkerId } from '../../worker-node/src/identity.js';
import { detectNodeInfo, liveLoad } from '../../worker-node/src/node-info.js';

const parse = (text: string) => parseWorkerConfig('w.yaml', text);
const fails = (text: string): string => {
  try {
    parse(text);
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
};

describe('worker config', () => {
  it('applies defaults', () => {
    const c = parse('manager: 127.0.0.1:7070\n');
    expect(c.data_dir).to.equal(resolve('data/worker'));
    expect(c.id_file).to.equal(resolve('data/worker/worker-id'));
    expect(c.reconnect_interval).to.equal(1000);
    expect(c.cancel_grace).to.equal(10_000);
    expect(c.log_level).to.equal('info');
    expect(c.labels).to.deep.equal({});
  });

  it('parses every key', () => {
    const c = parse(
      'manager: m:1\ntoken: t\ndata_dir: /d\nid_file: /i\ncapacity: {cpu: 1.5, memory: 512Mi}\nlabels: {rack: 3, gpu: true}\n' +
        'reconnect_interval: 250ms\ncancel_grace: 2s\nlog_level: debug\n',
    );
    expect(c).to.deep.include({ managers: ['m:1'], token: 't', data_dir: '/d', id_file: '/i', reconnect_interval: 250, cancel_grace: 2000 });
    expect(c.capacity).to.deep.equal({ cpu: 1.5, memory: 512 * 2 ** 20 });
    expect(c.labels).to.deep.equal({ rack: '3', gpu: 'true' });
    expect(parse('manager: m:1\ncapacity: {memory: 4Gi}').capacity?.memory).to.equal(4 * 2 ** 30);
    expect(parse('manager: m:1\ncapacity: {memory: 1048576B}').capacity?.memory).to.equal(2 ** 20);
    // The same parser as schedctl's --mem (common/size.ts): decimal units and a trailing B too.
    expect(parse('manager: m:1\ncapacity: {memory: 2G}').capacity?.memory).to.equal(2e9);
    expect(parse('manager: m:1\ncapacity: {memory: 1536MiB}').capacity?.memory).to.equal(1.5 * 2 ** 30);
    // Whole numbers with a unit only, as in flags: a bare number or a fraction is refused, saying what to write.
    expect(fails('manager: m:1\ncapacity: {memory: 1048576}\n')).to.match(/capacity\.memory: invalid memory size "1048576": add a unit, e\.g\. 512Mi/);
    expect(fails('manager: m:1\ncapacity: {memory: 1.5Gi}\n')).to.match(/capacity\.memory: .*whole numbers with a unit, e\.g\. 1536Mi$/);
    expect(fails('manager: m:1\ncancel_grace: 5\n')).to.match(/cancel_grace: invalid duration "5": add a unit, e\.g\. 5s/);
  });

  it('reads managers, a list of host:port, or manager as a one-entry list', () => {
    expect(parse('managers: [a:7070, "b.example:7071", "[::1]:7072"]\n').managers).to.deep.equal(['a:7070', 'b.example:7071', '[::1]:7072']);
    expect(parse('managers:\n  - 10.0.0.1:7070\n').managers).to.deep.equal(['10.0.0.1:7070']);
    expect(parse('manager: m:1\n').managers).to.deep.equal(['m:1']);
    expect(parse('manager: m:1\n')).to.not.have.property('manager');
    const list = (n: number) => `[${Array.from({ length: n }, (_, i) => `m${i}:7070`).join(', ')}]`;
    expect(parse(`managers: ${list(16)}\n`).managers).to.have.length(16);
    expect(fails(`managers: ${list(17)}\n`)).to.equal('w.yaml: managers: at most 16 managers');
    expect(fails('managers: []\n')).to.equal('w.yaml: managers: must list at least one host:port');
    expect(fails('managers: [a:1, nope]\n')).to.equal('w.yaml: managers.1: expected host:port, e.g. 127.0.0.1:7070');
    expect(fails('managers: a:1\n')).to.match(/^w\.yaml: managers: /);
    expect(fails('managers: [a:1, b:2, a:1]\n')).to.equal('w.yaml: managers: lists a:1 twice');
  });

  it('wants exactly one of manager and managers, and names both keys otherwise', () => {
    expect(fails('manager: m:1\nmanagers: [m:2]\n')).to.equal('w.yaml: manager: give either manager or managers, not both');
    expect(fails('token: x\n')).to.equal('w.yaml: manager: required key is missing: give managers (a list of host:port) or manager (one host:port)');
    expect(fails('')).to.match(/^w\.yaml: manager: required key is missing: give managers/);
    // An unknown key still comes first (often the typo behind the missing key).
    expect(fails('managerz: [m:1]\n')).to.equal('w.yaml: unknown key managerz');
  });

  it('names the key in errors', () => {
    expect(fails('token: x\n')).to.match(/^w\.yaml: manager:/);
    expect(fails('manager: nope\n')).to.match(/manager: expected host:port/);
    expect(fails('manager: m:1\nreconnect_interval: soon\n')).to.match(/reconnect_interval: invalid duration/);
    expect(fails('manager: m:1\nreconnect_interval: 0s\n')).to.match(/reconnect_interval: must be between 10ms and 5m, got 0s/);
    expect(fails('manager: m:1\ncapacity: {memory: lots}\n')).to.match(/capacity\.memory: invalid memory size/);
    expect(fails('manager: m:1\ncapacity: {memory: 0Gi}\n')).to.match(/capacity\.memory: invalid memory size "0Gi"/);
    expect(fails('manager: m:1\ncapacity: {cpu: -1}\n')).to.match(/capacity\.cpu/);
    expect(fails('manager: m:1\ncapacity: {disk: 1}\n')).to.match(/unknown key capacity\.disk/);
    expect(fails('manager: m:1\nmanger: x\n')).to.match(/unknown key manger/);
    expect(fails('manager: m:1\nlog_level: loud\n')).to.match(/log_level/);
    expect(fails('manager: m:1\nlabels: {a: [1]}\n')).to.match(/labels\.a/);
  });

  it('reads the isolation keys: cgroups, memory_headroom (0 needs no unit), max_pids, run_as, allowed_users', () => {
    const d = parse('manager: m:1\n');
    expect(d).to.deep.include({ cgroups: 'auto', memory_headroom: 0, max_pids: 4096, cpu_hard_limit: false, allowed_users: [] });
    expect(d.run_as).to.equal(undefined);
    const c = parse('manager: m:1\ncgroups: off\nmemory_headroom: 0\nmax_pids: 64\ncpu_hard_limit: true\nrun_as: nobody\nallowed_users: [builder, www-data]\n');
    expect(c).to.deep.include({ cgroups: 'off', memory_headroom: 0, max_pids: 64, cpu_hard_limit: true, run_as: 'nobody', allowed_users: ['builder', 'www-data'] });
    expect(parse('manager: m:1\nmemory_headroom: 16Mi\n').memory_headroom).to.equal(16 * 2 ** 20);
    expect(fails('manager: m:1\nmemory_headroom: 16\n')).to.match(/memory_headroom: invalid memory size "16": add a unit/);
    expect(fails('manager: m:1\ncgroups: on\n')).to.match(/cgroups: /);
    expect(fails('manager: m:1\nmax_pids: 0\n')).to.match(/max_pids: must be a whole number between 1 and 4194304, got 0/);
    expect(fails('manager: m:1\nallowed_users: [ok, "not ok"]\n')).to.match(/allowed_users\.1: must be a user name/);
  });

  it('reads env_inherit: variable names, at most 256', () => {
    expect(parse('manager: m:1\n').env_inherit).to.deep.equal([]);
    expect(parse('manager: m:1\nenv_inherit: [http_proxy, _X1, JAVA_HOME]\n').env_inherit).to.deep.equal(['http_proxy', '_X1', 'JAVA_HOME']);
    expect(fails('manager: m:1\nenv_inherit: [A=B]\n')).to.match(/env_inherit\.0: must be an environment variable name/);
    expect(fails('manager: m:1\nenv_inherit: [1X]\n')).to.match(/env_inherit\.0/);
    expect(fails('manager: m:1\nenv_inherit: [OK, ""]\n')).to.match(/env_inherit\.1/);
    expect(fails('manager: m:1\nenv_inherit: PATH\n')).to.match(/env_inherit/);
    const names = (n: number) => `[${Array.from({ length: n }, (_, i) => `V${i}`).join(', ')}]`;
    expect(parse(`manager: m:1\nenv_inherit: ${names(256)}\n`).env_inherit).to.have.length(256);
    expect(fails(`manager: m:1\nenv_inherit: ${names(257)}\n`)).to.match(/env_inherit/);
  });

  it('parses the example config', () => {
    const text = readFileSync('worker-node/worker-node.yaml', 'utf8');
    const c = parseWorkerConfig('worker-node.yaml', text);
    expect(c.managers).to.deep.equal(['127.0.0.1:7070']);
    // Its commented env_inherit example is valid once uncommented.
    const example = /^# (env_inherit: .*)$/m.exec(text);
    expect(example, 'env_inherit example').to.not.equal(null);
    expect(parseWorkerConfig('worker-node.yaml', `${text}\n${example![1]}\n`).env_inherit.length).to.be.greaterThan(0);
  });

  // key, lowest accepted, highest accepted, a value outside and the whole message after the key.
  const ranges: Array<[string, string, string, string, string]> = [
    ['reconnect_interval', '10ms', '5m', '6m', 'must be between 10ms and 5m, got 6m'],
    ['reconnect_max', '10ms', '1h', '0s', 'must be between 10ms and 1h, got 0s'],
    ['cancel_grace', '0s', '1h', '2h', 'must be between 0s and 1h, got 2h'],
    ['shutdown_timeout', '0s', '24h', '25h', 'must be between 0s and 24h, got 25h'],
    ['log_retention', '1m', '8760h', '0s', 'must be between 1m and 8760h (365 days), got 0s'],
    ['log_max_size', '1Ki', '1Ti', '100B', 'must be between 1Ki and 1Ti, got 100'],
  ];
  for (const [key, low, high, bad, message] of ranges) {
    it(`${key}: accepts ${low} to ${high}, refuses ${bad} naming the range`, () => {
      parse(`manager: m:1\n${key}: ${low}\n`);
      parse(`manager: m:1\n${key}: ${high}\n`);
      expect(fails(`manager: m:1\n${key}: ${bad}\n`)).to.equal(`w.yaml: ${key}: ${message}`);
    });
  }

  it('capacity has a range too', () => {
    expect(parse('manager: m:1\ncapacity: {cpu: 0.001, memory: 1Mi}').capacity).to.deep.equal({ cpu: 0.001, memory: 2 ** 20 });
    expect(parse('manager: m:1\ncapacity: {cpu: 4096, memory: 1024Ti}').capacity).to.deep.equal({ cpu: 4096, memory: 2 ** 50 });
    expect(fails('manager: m:1\ncapacity: {memory: 1000B}\n')).to.equal('w.yaml: capacity.memory: must be between 1Mi and 1024Ti, got 1000');
    expect(fails('manager: m:1\ncapacity: {cpu: 0}\n')).to.equal('w.yaml: capacity.cpu: must be a number between 0.001 and 4096, got 0');
    expect(fails('manager: m:1\ncapacity: {cpu: 10000}\n')).to.match(/capacity\.cpu: must be a number between 0\.001 and 4096, got 10000$/);
  });
});

describe('worker identity and node info', () => {
  it('creates the id once and reads it back', () => {
    const dir = mkdtempSync(join(tmpdir(), 'worker-id-'));
    try {
      const file = join(dir, 'a', 'b', 'worker-id');
      const id = loadWorkerId(file);
      expect(id).to.match(/^[0-9a-f-]{36}$/);
      expect(loadWorkerId(file)).to.equal(id);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('detects capacity and lets config override it and the labels', () => {
    const detected = detectNodeInfo({ labels: {} });
    expect(detected.capacity.millicpu > 0n).to.equal(true);
    expect(detected.labels).to.include.keys('hostname', 'os', 'arch');
    expect(detected.hardware.kernel).to.not.equal('');
    const custom = detectNodeInfo({ capacity: { cpu: 1.5, memory: 1024 }, labels: { os: 'custom', zone: 'z' } });
    expect(custom.capacity.millicpu).to.equal(1500n);
    expect(custom.capacity.memoryBytes).to.equal(1024n);
    expect(custom.labels).to.include({ os: 'custom', zone: 'z' });
  });

  it('takes a name of 1-63 of [A-Za-z0-9._-], and asks for the hostname without one', () => {
    expect(parse('manager: m:1\nname: build-1.eu_west\n').name).to.equal('build-1.eu_west');
    expect(fails('manager: m:1\nname: "a b"\n')).to.match(/name.*1-63 of \[A-Za-z0-9._-\]/);
    expect(fails(`manager: m:1\nname: ${'x'.repeat(64)}\n`)).to.match(/name/);
    expect(detectNodeInfo({ labels: {}, name: 'build-1' }).name).to.equal('build-1');
    expect(detectNodeInfo({ labels: {} }).name).to.equal(hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 63));
  });

  it('reads the live load sent in each Pong', () => {
    const load = liveLoad();
    expect(load.load1).to.be.a('number').and.to.be.at.least(0);
    expect(load.memoryFreeBytes > 0n).to.equal(true);
  });
});
