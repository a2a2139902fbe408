import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../../common/config.js';
import { parseManagerConfig } from '../../management-node/src/config.js';

const parse = (text: string) => parseManagerConfig('m.yaml', text);
const fails = (text: string): string => {
  try {
    parse(text);
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(text)}`);
};

describe('manager config', () => {
  it('applies defaults, hello_timeout and max_streams_per_connection among them', () => {
    expect(parse('')).to.deep.include({
      ping_interval: 1000,
      missed_pings: 3,
      ack_timeout: 5000,
      hello_timeout: 10_000,
      max_streams_per_connection: 100,
      reconnect_grace: 10_000,
      recovery_grace: 10_000,
      retention: 86_400_000,
      max_finished_tasks: 100_000,
      default_task_cpu: 0.25,
      default_task_memory: 64 * 2 ** 20,
    });
  });

  it('reads the sample management-node.yaml', () => {
    const c = parseManagerConfig('management-node.yaml', readFileSync('management-node/management-node.yaml', 'utf8'));
    expect(c).to.deep.include({ hello_timeout: 10_000, max_streams_per_connection: 100, ack_timeout: 5000 });
  });

  // key, lowest accepted, highest accepted, and the message's range.
  const durations: Array<[string, string, string, string]> = [
    ['ping_interval', '50ms', '5m', 'between 50ms and 5m'],
    ['ack_timeout', '100ms', '10m', 'between 100ms and 10m'],
    ['hello_timeout', '1s', '5m', 'between 1s and 5m'],
    ['reconnect_grace', '1s', '168h', 'between 1s and 168h (7 days)'],
    ['recovery_grace', '0s', '1h', 'between 0s and 1h'],
    ['retention', '1m', '8760h', 'between 1m and 8760h (365 days)'],
  ];
  for (const [key, low, high, range] of durations) {
    it(`${key}: accepts ${low} to ${high}, refuses outside naming the range`, () => {
      parse(`${key}: ${low}\n`);
      parse(`${key}: ${high}\n`);
      expect(fails(`${key}: 9000h\n`)).to.equal(`m.yaml: ${key}: must be ${range}, got 9000h (375 days)`);
      if (low !== '0s') expect(fails(`${key}: 0s\n`)).to.equal(`m.yaml: ${key}: must be ${range}, got 0s`);
    });
  }

  it('the etcd dial_timeout has a range too', () => {
    const etcd = (t: string) => `store: {type: etcd, endpoints: ["http://127.0.0.1:2379"], dial_timeout: ${t}}\n`;
    expect((parse(etcd('1m')).store as { dial_timeout: number }).dial_timeout).to.equal(60_000);
    expect(fails(etcd('0s'))).to.equal('m.yaml: store.dial_timeout: must be between 100ms and 1m, got 0s');
  });

  it('numbers and sizes: ranges named in the message', () => {
    expect(parse('max_streams_per_connection: 10000\nmissed_pings: 100\nmax_finished_tasks: 0\n')).to.deep.include({
      max_streams_per_connection: 10_000,
      missed_pings: 100,
      max_finished_tasks: 0,
    });
    expect(fails('max_streams_per_connection: 0\n')).to.equal('m.yaml: max_streams_per_connection: must be a whole number between 1 and 10000, got 0');
    expect(fails('max_streams_per_connection: 10001\n')).to.match(/between 1 and 10000, got 10001$/);
    expect(fails('missed_pings: 0\n')).to.match(/^m\.yaml: missed_pings: must be a whole number between 1 and 100/);
    expect(fails('max_finished_tasks: 1e9\n')).to.match(/^m\.yaml: max_finished_tasks: must be a whole number between 0 and 10000000/);
    expect(fails('default_task_cpu: 0\n')).to.equal('m.yaml: default_task_cpu: must be a number between 0.001 and 1024, got 0');
    expect(fails('default_task_memory: 1Ki\n')).to.equal('m.yaml: default_task_memory: must be between 1Mi and 1Ti, got 1Ki');
    expect(fails('default_task_memory: 2Ti\n')).to.equal('m.yaml: default_task_memory: must be between 1Mi and 1Ti, got 2Ti');
  });
});
