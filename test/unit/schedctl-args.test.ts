import { expect } from 'chai';
import { InvalidArgumentError } from 'commander';
import { create } from '@bufbuild/protobuf';
import { TaskSchema, TaskState } from '../../proto/gen/schedapi/v1/types_pb.js';
import {
  groupExitCode,
  parseCount,
  parseCpu,
  parseEnvPair,
  parseKeyValue,
  parseMem,
  parsePriority,
  parseRetries,
  parseTimeLimit,
  processExitCode,
  specFromOptions,
} from '../../schedctl/src/commands/tasks-run.js';
import { parseLimit } from '../../schedctl/src/commands/tasks-ls.js';
import { parseGrace } from '../../schedctl/src/commands/tasks-cancel.js';

describe('schedctl argument parsing', () => {
  describe('--env', () => {
    it('collects repeated KEY=VALUE pairs', () => {
      const env = parseEnvPair('B=2', parseEnvPair('A=1', undefined));
      expect(env).to.deep.equal({ A: '1', B: '2' });
    });

    it('splits at the first = only and allows an empty value', () => {
      expect(parseEnvPair('URL=a=b', undefined)).to.deep.equal({ URL: 'a=b' });
      expect(parseEnvPair('EMPTY=', undefined)).to.deep.equal({ EMPTY: '' });
    });

    it('lets a later value override an earlier one', () => {
      expect(parseEnvPair('A=2', { A: '1' })).to.deep.equal({ A: '2' });
    });

    it('refuses a pair without = or without a key', () => {
      expect(() => parseEnvPair('NOEQUALS', undefined)).to.throw(InvalidArgumentError, /KEY=VALUE/);
      expect(() => parseEnvPair('=value', undefined)).to.throw(InvalidArgumentError);
    });
  });

  describe('--limit', () => {
    it('accepts whole numbers including 0', () => {
      expect(parseLimit('0')).to.equal(0);
      expect(parseLimit('250')).to.equal(250);
    });

    it('refuses anything else, and more than list_tasks\' uint32 limit holds', () => {
      for (const bad of ['-1', '1.5', 'ten', '', '4294967296', '99999999999999999999']) expect(() => parseLimit(bad), bad).to.throw(InvalidArgumentError);
      expect(parseLimit('4294967295')).to.equal(2 ** 32 - 1);
    });
  });

  describe('exit code of tasks run --wait', () => {
    it('passes 0..255 through and maps the rest to 1 (a wrapped 256 would read as success)', () => {
      expect(processExitCode(0)).to.equal(0);
      expect(processExitCode(137)).to.equal(137);
      expect(processExitCode(256)).to.equal(1);
      expect(processExitCode(-1)).to.equal(1);
    });
  });

  describe('--label', () => {
    it('collects repeated KEY=VALUE constraints like --env', () => {
      expect(parseKeyValue('zone=a', parseKeyValue('gpu=true', undefined))).to.deep.equal({ gpu: 'true', zone: 'a' });
      expect(() => parseKeyValue('gpu', undefined)).to.throw(InvalidArgumentError, /KEY=VALUE/);
    });
  });

  describe('--cpu', () => {
    it('reads cores as millicpu, and millicpu with an m', () => {
      expect(parseCpu('0.5')).to.equal(500);
      expect(parseCpu('2')).to.equal(2000);
      expect(parseCpu('1.25')).to.equal(1250);
      expect(parseCpu('.1')).to.equal(100);
      expect(parseCpu('0.001')).to.equal(1);
      expect(parseCpu('500m')).to.equal(500);
      expect(parseCpu(' 3m ')).to.equal(3);
    });

    it('refuses zero, negatives, finer than 1m and anything else', () => {
      for (const bad of ['0', '0m', '-1', '0.0005', '1.5m', '1e3', 'm', 'half', '', '2 cores']) {
        expect(() => parseCpu(bad), bad).to.throw(InvalidArgumentError, /invalid CPU/);
      }
    });
  });

  describe('--mem', () => {
    it('reads whole numbers with binary and decimal units, with or without B, and bytes as B', () => {
      expect(parseMem('256Mi')).to.equal(256 * 2 ** 20);
      expect(parseMem('1Gi')).to.equal(2 ** 30);
      expect(parseMem('1536Mi')).to.equal(1.5 * 2 ** 30);
      expect(parseMem('512M')).to.equal(512e6);
      expect(parseMem('512MB')).to.equal(512e6);
      expect(parseMem('64ki')).to.equal(65_536);
      expect(parseMem('1000B')).to.equal(1000);
    });

    it('refuses a bare number and a fraction, saying what to write instead', () => {
      expect(() => parseMem('1.5')).to.throw(InvalidArgumentError, /^invalid memory size "1\.5": add a unit, e\.g\. 512Mi/);
      expect(() => parseMem('1000')).to.throw(InvalidArgumentError, /add a unit/);
      expect(() => parseMem('1.5Gi')).to.throw(InvalidArgumentError, /^invalid memory size "1\.5Gi": sizes are whole numbers with a unit, e\.g\. 1536Mi$/);
      expect(() => parseMem('0.3Ki')).to.throw(InvalidArgumentError, /whole numbers with a unit, e\.g\. 512Mi$/);
    });

    it('refuses zero, negatives, unknown units and sizes past 2^53', () => {
      for (const bad of ['0', '-1Gi', '1Qi', 'Gi', 'lots', '', '99999999Ti']) {
        expect(() => parseMem(bad), bad).to.throw(InvalidArgumentError, /invalid memory size/);
      }
    });
  });

  describe('--priority, --retries, --count', () => {
    it('accept whole numbers in range', () => {
      expect(parsePriority('10')).to.equal(10);
      expect(parsePriority('-5')).to.equal(-5);
      expect(parsePriority('2147483647')).to.equal(2 ** 31 - 1);
      expect(parseRetries('0')).to.equal(0);
      expect(parseRetries('3')).to.equal(3);
      expect(parseCount('1')).to.equal(1);
      expect(parseCount('20')).to.equal(20);
    });

    it('refuse fractions, words and values out of range', () => {
      for (const bad of ['1.5', 'high', '', '2147483648']) expect(() => parsePriority(bad), bad).to.throw(InvalidArgumentError);
      for (const bad of ['-1', '1.5', 'x', '4294967296']) expect(() => parseRetries(bad), bad).to.throw(InvalidArgumentError);
      for (const bad of ['0', '-2', '2.5', 'many', '10001']) expect(() => parseCount(bad), bad).to.throw(InvalidArgumentError, /from 1 to 10000/);
      expect(parseCount('10000')).to.equal(10_000);
      expect(parseRetries('4294967295')).to.equal(2 ** 32 - 1);
    });
  });

  describe('--schedule-timeout', () => {
    it('reads a duration as milliseconds', () => {
      expect(parseTimeLimit('30s')).to.equal(30_000);
      expect(parseTimeLimit('1m30s')).to.equal(90_000);
      expect(parseTimeLimit('0s')).to.equal(0);
    });

    it('refuses a bare number and more than a uint32 of milliseconds, naming the range', () => {
      expect(() => parseTimeLimit('30')).to.throw(InvalidArgumentError, /^invalid duration "30": add a unit, e\.g\. 5s/);
      expect(() => parseTimeLimit('1200h')).to.throw(
        InvalidArgumentError,
        'must be between 0s and 1193h2m47.295s (about 49.7 days), got 1200h (50 days)',
      );
    });

    it('accepts 30 days and up to the uint32 limit (about 49.7 days)', () => {
      expect(parseTimeLimit('720h')).to.equal(30 * 86_400_000);
      expect(parseTimeLimit('1193h2m47.295s')).to.equal(2 ** 32 - 1);
      expect(() => parseTimeLimit('1193h2m47.296s')).to.throw(InvalidArgumentError);
    });
  });

  describe('tasks cancel --grace', () => {
    it('reads a duration from 1ms to the uint32 limit', () => {
      expect(parseGrace('500ms')).to.equal(500);
      expect(parseGrace('720h')).to.equal(30 * 86_400_000);
      expect(parseGrace('1193h2m47.295s')).to.equal(2 ** 32 - 1);
    });

    it('refuses 0 (grace_ms 0 means the worker default), more than a uint32 of ms, and non-durations', () => {
      expect(() => parseGrace('0s')).to.throw(InvalidArgumentError, /must be between 1ms and 1193h2m47\.295s .*, got 0s/);
      expect(() => parseGrace('1200h')).to.throw(InvalidArgumentError, /got 1200h/);
      expect(() => parseGrace('10')).to.throw(InvalidArgumentError, /invalid duration/);
    });
  });

  describe('the spec from the flags', () => {
    it('leaves unset flags at the defaults and sets resources only when asked', () => {
      const plain = specFromOptions(['true'], {});
      expect(plain).to.deep.include({ argv: ['true'], cwd: '', priority: 0, retries: 0, strategy: '', scheduleTimeoutMs: 0 });
      expect(plain.resources).to.equal(undefined);
      const memOnly = specFromOptions(['true'], { mem: 1024 });
      expect(memOnly.resources).to.deep.include({ millicpu: 0n, memoryBytes: 1024n });
      expect(specFromOptions(['true'], { spread: true }).strategy).to.equal('spread');
      expect(specFromOptions(['true'], { binpack: true }).strategy).to.equal('binpack');
    });
  });

  describe('exit code of tasks run --count --wait', () => {
    const done = (exitCode: number) => create(TaskSchema, { state: TaskState.DONE, exitCode });
    it('is the first failing exit code in the order given, or 125 if any task is dead', () => {
      expect(groupExitCode([done(0), done(0)])).to.equal(0);
      expect(groupExitCode([done(0), done(137), done(3)])).to.equal(137);
      expect(groupExitCode([done(0), done(300)])).to.equal(1);
      expect(groupExitCode([done(255), create(TaskSchema, { state: TaskState.DEAD })])).to.equal(125);
    });
    it('is 127 or 126 for a program that could not start, as a shell would say', () => {
      const startFailed = (exitCode: number) => create(TaskSchema, { state: TaskState.DEAD, deadReason: 'start-failed', exitCode });
      expect(groupExitCode([startFailed(127)])).to.equal(127);
      expect(groupExitCode([done(0), startFailed(126)])).to.equal(126);
      expect(groupExitCode([startFailed(127), create(TaskSchema, { state: TaskState.DEAD, deadReason: 'cancelled' })])).to.equal(125);
    });
  });
});
