import { expect } from 'chai';
import { formatDuration, parseDuration } from '../../common/duration.js';

describe('common/duration', () => {
  describe('parseDuration', () => {
    const cases: Array<[string, number]> = [
      ['0ms', 0],
      ['500ms', 500],
      ['1s', 1000],
      ['10s', 10_000],
      ['2m', 120_000],
      ['1h', 3_600_000],
      ['1h30m', 5_400_000],
      ['1m30s', 90_000],
      ['1s500ms', 1500],
      ['1.5s', 1500],
      ['0.25s', 250],
      ['1.0005s', 1001],
      ['  250ms\n', 250],
    ];
    for (const [text, ms] of cases) {
      it(`${JSON.stringify(text)} is ${ms} ms`, () => {
        expect(parseDuration(text)).to.equal(ms);
      });
    }

    const bad = ['', '10', 's', '1d', '-1s', '1 s', '1s 2s', '1S', 'ms', '.5s', '1e3ms', 'Infinity', '1s-'];
    for (const text of bad) {
      it(`refuses ${JSON.stringify(text)} with a message naming it`, () => {
        expect(() => parseDuration(text)).to.throw(Error, `invalid duration ${JSON.stringify(text)}`);
      });
    }

    it('says what a valid duration looks like', () => {
      expect(() => parseDuration('5 minutes')).to.throw(/500ms, 10s, 2m, 1h/);
    });
  });

  describe('formatDuration', () => {
    const cases: Array<[number, string]> = [
      [0, '0ms'],
      [1, '1ms'],
      [999, '999ms'],
      [1000, '1.00s'],
      [1234, '1.23s'],
      [12_345, '12.3s'],
      [60_000, '1m0s'],
      [90_000, '1m30s'],
      [3_599_000, '59m59s'],
      [3_600_000, '1h0m'],
      [5_400_000, '1h30m'],
      [90_000_000, '25h0m'],
    ];
    for (const [ms, text] of cases) {
      it(`${ms} ms is ${text}`, () => {
        expect(formatDuration(ms)).to.equal(text);
      });
    }

    it('round-trips whole units through parseDuration', () => {
      for (const ms of [0, 1, 999, 60_000, 90_000, 3_600_000, 5_400_000]) {
        expect(parseDuration(formatDuration(ms))).to.equal(ms);
      }
    });
  });
});
