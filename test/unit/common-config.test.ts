import { expect } from 'chai';
import { chmod, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { ConfigError, duration, durationIn, hostPort, loadConfig, logLevel, memoryIn, numberIn, parseConfig } from '../../common/config.js';
import { formatMemorySize } from '../../common/size.js';
import { tempDir } from '../support/etcd.js';

const schema = z.strictObject({
  listen: hostPort().default('127.0.0.1:7070'),
  log_level: logLevel().default('info'),
  // zod 4: .default() skips the transform, so defaults are in milliseconds.
  ping_interval: duration().default(1000),
  workers: z.number().int().positive().default(1),
  store: z
    .strictObject({
      kind: z.enum(['etcd', 'embedded']),
      endpoints: z.array(z.string()).default([]),
    })
    .default({ kind: 'embedded', endpoints: [] }),
});

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    const e = err as ConfigError;
    expect(e.name).to.equal('ConfigError');
    expect(e.message, 'one line').not.to.include('\n');
    return e;
  }
  return expect.fail('expected a ConfigError');
}

describe('common/config', () => {
  let dir: string;
  before(async () => {
    dir = await tempDir('sched-config-');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function file(name: string, text: string): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, text);
    return path;
  }

  it('loads a valid file, with defaults and durations', async () => {
    const path = await file('good.yaml', 'listen: 0.0.0.0:9000\nping_interval: 250ms\nstore:\n  kind: etcd\n  endpoints: [http://127.0.0.1:2379]\n');
    expect(loadConfig(path, schema)).to.deep.equal({
      listen: '0.0.0.0:9000',
      log_level: 'info',
      ping_interval: 250,
      workers: 1,
      store: { kind: 'etcd', endpoints: ['http://127.0.0.1:2379'] },
    });
  });

  it('an empty file or a comment-only file means all defaults', async () => {
    for (const text of ['', '# nothing here\n']) {
      const path = await file('empty.yaml', text);
      expect(loadConfig(path, schema)).to.deep.include({ listen: '127.0.0.1:7070', ping_interval: 1000 });
    }
  });

  it('a duration needs a unit: a bare number is refused, as in flags', () => {
    expect(parseConfig('x.yaml', 'ping_interval: 1500ms', schema).ping_interval).to.equal(1500);
    expect(configError(() => parseConfig('x.yaml', 'ping_interval: 1500', schema)).message).to.equal(
      'x.yaml: ping_interval: invalid duration "1500": add a unit, e.g. 5s (ms, s, m or h)',
    );
  });

  it('missing file: names the file', () => {
    const path = join(dir, 'nope.yaml');
    const e = configError(() => loadConfig(path, schema));
    expect(e.message).to.equal(`${path}: cannot read config: no such file`);
  });

  it('unreadable file: names the file', async function () {
    if (process.getuid?.() === 0) this.skip(); // root reads anything
    const path = await file('secret.yaml', 'workers: 2\n');
    await chmod(path, 0o000);
    const e = configError(() => loadConfig(path, schema));
    expect(e.message).to.equal(`${path}: cannot read config: permission denied`);
  });

  it('a directory instead of a file: names the file', () => {
    const e = configError(() => loadConfig(dir, schema));
    expect(e.message).to.match(new RegExp(`^${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: cannot read config: `));
  });

  it('bad YAML: names the file and the line', async () => {
    const path = await file('bad.yaml', 'listen: 127.0.0.1:7070\nstore:\n  kind: [etcd\n');
    const e = configError(() => loadConfig(path, schema));
    expect(e.message).to.match(new RegExp(`^${path.replace(/[.]/g, '\\.')}: invalid YAML \\(line \\d+, column \\d+\\): `));
  });

  it('bad YAML: a duplicate key is refused, naming the line', () => {
    expect(configError(() => parseConfig('dup.yaml', 'workers: 1\nworkers: 2\n', schema)).message).to.equal(
      'dup.yaml: invalid YAML (line 2, column 1): Map keys must be unique',
    );
  });

  it('unknown key: names the file and the key', async () => {
    const path = await file('unknown.yaml', 'listen: 127.0.0.1:7070\nlisten_addr: 1.2.3.4:5\n');
    const e = configError(() => loadConfig(path, schema));
    expect(e.message).to.equal(`${path}: unknown key listen_addr`);
  });

  it('unknown nested key: names the full key path', () => {
    const e = configError(() => parseConfig('n.yaml', 'store:\n  kind: etcd\n  endpoint: x\n', schema));
    expect(e.message).to.equal('n.yaml: unknown key store.endpoint');
  });

  it('wrong type: names the file and the key', async () => {
    const path = await file('type.yaml', 'workers: many\n');
    const e = configError(() => loadConfig(path, schema));
    expect(e.message).to.match(new RegExp(`^${path.replace(/[.]/g, '\\.')}: workers: .*number`));
  });

  it('wrong type deep inside: names the dotted path', () => {
    const e1 = configError(() => parseConfig('d.yaml', 'store:\n  kind: postgres\n', schema));
    expect(e1.message).to.match(/^d\.yaml: store\.kind: .*"etcd"/);
    const e2 = configError(() => parseConfig('d.yaml', 'store:\n  kind: etcd\n  endpoints: [a, {b: c}]\n', schema));
    expect(e2.message).to.match(/^d\.yaml: store\.endpoints\.1: .*string/);
  });

  it('a top-level scalar or list names the top level', () => {
    expect(configError(() => parseConfig('s.yaml', 'just a string\n', schema)).message).to.match(/^s\.yaml: \(top level\): /);
    expect(configError(() => parseConfig('l.yaml', '- a\n- b\n', schema)).message).to.match(/^l\.yaml: \(top level\): /);
  });

  it('bad duration: names the key and the value', () => {
    const e = configError(() => parseConfig('p.yaml', 'ping_interval: 5 minutes\n', schema));
    expect(e.message).to.equal('p.yaml: ping_interval: invalid duration "5 minutes" (use e.g. 500ms, 10s, 2m, 1h)');
    expect(configError(() => parseConfig('p.yaml', 'ping_interval: -5\n', schema)).message).to.match(/^p\.yaml: ping_interval: /);
  });

  it('bad host:port and log level: names the key', () => {
    expect(configError(() => parseConfig('h.yaml', 'listen: localhost\n', schema)).message).to.equal(
      'h.yaml: listen: expected host:port, e.g. 127.0.0.1:7070',
    );
    expect(configError(() => parseConfig('h.yaml', 'listen: ":7070"\n', schema)).message).to.match(/^h\.yaml: listen: /);
    expect(parseConfig('h.yaml', 'listen: "[::1]:7070"\n', schema).listen).to.equal('[::1]:7070');
    expect(configError(() => parseConfig('h.yaml', 'log_level: loud\n', schema)).message).to.match(/^h\.yaml: log_level: /);
  });

  describe('range-checked keys', () => {
    const ranged = z.strictObject({
      ack_timeout: durationIn(100, 600_000).default(5000),
      log_max_size: memoryIn(1024, 2 ** 40).default(2 ** 26),
      missed_pings: numberIn(1, 100, { int: true }).default(3),
      cpu: numberIn(0.001, 1024).optional(),
    });
    const parse = (text: string) => parseConfig('r.yaml', text, ranged);

    it('accepts values inside the range, bounds included, and leaves defaults alone', () => {
      expect(parse('')).to.deep.equal({ ack_timeout: 5000, log_max_size: 2 ** 26, missed_pings: 3 });
      expect(parse('ack_timeout: 100ms\nlog_max_size: 1Ki\nmissed_pings: 100\ncpu: 0.001\n')).to.deep.equal({
        ack_timeout: 100,
        log_max_size: 1024,
        missed_pings: 100,
        cpu: 0.001,
      });
      expect(parse('ack_timeout: 10m\nlog_max_size: 1Ti\n')).to.deep.include({ ack_timeout: 600_000, log_max_size: 2 ** 40 });
    });

    it('refuses a value outside, naming the key, the range and the value', () => {
      expect(configError(() => parse('ack_timeout: 0s\n')).message).to.equal('r.yaml: ack_timeout: must be between 100ms and 10m, got 0s');
      expect(configError(() => parse('ack_timeout: 0\n')).message).to.match(/^r\.yaml: ack_timeout: invalid duration "0": add a unit/);
      expect(configError(() => parse('ack_timeout: 2h\n')).message).to.equal('r.yaml: ack_timeout: must be between 100ms and 10m, got 2h');
      expect(configError(() => parse('log_max_size: 12B\n')).message).to.equal('r.yaml: log_max_size: must be between 1Ki and 1Ti, got 12');
      expect(configError(() => parse('log_max_size: 12\n')).message).to.match(/^r\.yaml: log_max_size: invalid memory size "12": add a unit/);
      expect(configError(() => parse('log_max_size: 2Ti\n')).message).to.equal('r.yaml: log_max_size: must be between 1Ki and 1Ti, got 2Ti');
      expect(configError(() => parse('missed_pings: 0\n')).message).to.equal('r.yaml: missed_pings: must be a whole number between 1 and 100, got 0');
      expect(configError(() => parse('missed_pings: 1.5\n')).message).to.equal('r.yaml: missed_pings: must be a whole number between 1 and 100, got 1.5');
      expect(configError(() => parse('cpu: 5000\n')).message).to.equal('r.yaml: cpu: must be a number between 0.001 and 1024, got 5000');
      // Parse errors still come first.
      expect(configError(() => parse('ack_timeout: soon\n')).message).to.match(/ack_timeout: invalid duration "soon"/);
    });

    it('formats sizes in the largest exact binary unit', () => {
      expect([1, 1024, 1536, 2 ** 20, 3 * 2 ** 30, 2 ** 40, 1024 * 2 ** 40].map(formatMemorySize)).to.deep.equal(['1', '1Ki', '1536', '1Mi', '3Gi', '1Ti', '1024Ti']);
    });
  });
});
