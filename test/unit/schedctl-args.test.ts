import { expect } from 'chai';
import { InvalidArgumentError } from 'commander';
import { parseEnvPair, processExitCode } from '../../schedctl/src/commands/tasks-run.js';
import { parseLimit } from '../../schedctl/src/commands/tasks-ls.js';

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

    it('refuses anything else', () => {
      for (const bad of ['-1', '1.5', 'ten', '']) expect(() => parseLimit(bad), bad).to.throw(InvalidArgumentError);
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
});
