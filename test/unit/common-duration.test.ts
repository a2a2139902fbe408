import { expect } from 'chai';
import {
  describeDuration,
  durationRangeError,
  formatDuration,
  formatDurationExact,
  MAX_UINT32_MS,
  parseDuration,
  parseDurationIn,
} from '../../common/duration.js';

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

  describe('formatDurationExact and describeDuration', () => {
    const cases: Array<[number, string]> = [
      [0, '0s'],
      [1, '1ms'],
      [100, '100ms'],
      [1500, '1.5s'],
      [60_000, '1m'],
      [600_000, '10m'],
      [5_400_000, '1h30m'],
      [3_600_000 + 1, '1h1ms'],
      [61_500, '1m1.5s'],
      [30 * 24 * 3_600_000, '720h'],
    ];
    for (const [ms, text] of cases) {
      it(`${ms} ms is ${text}, which parseDuration reads back`, () => {
        expect(formatDurationExact(ms)).to.equal(text);
        expect(parseDuration(text)).to.equal(ms);
      });
    }

    it('spells out days past two of them', () => {
      expect(describeDuration(86_400_000)).to.equal('24h');
      expect(describeDuration(30 * 86_400_000)).to.equal('720h (30 days)');
      expect(describeDuration(MAX_UINT32_MS)).to.equal('1193h2m47.295s (about 49.7 days)');
    });
  });

  describe('range checks', () => {
    it('says the range and the value, or nothing inside the range (bounds included)', () => {
      const range = { min: 100, max: 600_000 };
      expect(durationRangeError(0, range)).to.equal('must be between 100ms and 10m, got 0s');
      expect(durationRangeError(600_001, range)).to.equal('must be between 100ms and 10m, got 10m1ms');
      expect(durationRangeError(100, range)).to.equal(undefined);
      expect(durationRangeError(600_000, range)).to.equal(undefined);
      expect(durationRangeError(Number.NaN, range)).to.be.a('string');
    });

    it('parseDurationIn parses, then checks the range', () => {
      const range = { min: 0, max: MAX_UINT32_MS };
      expect(parseDurationIn('720h', range)).to.equal(30 * 86_400_000);
      expect(parseDurationIn('0s', range)).to.equal(0);
      expect(() => parseDurationIn('1200h', range)).to.throw('must be between 0s and 1193h2m47.295s (about 49.7 days), got 1200h (50 days)');
      expect(() => parseDurationIn('soon', range)).to.throw(/invalid duration "soon"/);
    });
  });
});
