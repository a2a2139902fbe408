// The pure rules of schedules: slots across daylight-saving changes, which due slots
// run, are made up or missed, overlap decisions, validation and the history bound.
import { expect } from 'chai';
import { create } from '@bufbuild/protobuf';
import { ScheduleSchema } from '../../proto/gen/schedapi/v1/types_pb.js';
import {
  cronOf,
  dueSlots,
  nextSlot,
  overlapAction,
  planSlots,
  record,
  run,
  slotKey,
  validateSchedule,
} from '../../management-node/src/schedules/schedule-rules.js';

const ms = (iso: string) => Date.parse(iso);
const iso = (t: number) => new Date(t).toISOString();

/** Every slot in (from, to], walking nextSlot as the leader's tick would. */
function firings(expr: string, tz: string, from: string, to: string): string[] {
  const cron = cronOf(expr, tz);
  const out: string[] = [];
  for (let t = nextSlot(cron, ms(from)); t !== 0 && t <= ms(to); t = nextSlot(cron, t)) out.push(iso(t));
  return out;
}

describe('schedules: rules', () => {
  describe('daylight saving in Europe/Berlin (30 2 * * *)', () => {
    it('a spring-forward day, whose 02:30 does not exist, fires once, at 03:00 CEST', () => {
      // 2026-03-29: clocks jump from 02:00 CET to 03:00 CEST.
      expect(firings('30 2 * * *', 'Europe/Berlin', '2026-03-28T00:00:00Z', '2026-03-30T23:00:00Z')).to.deep.equal([
        '2026-03-28T01:30:00.000Z', // 02:30 CET
        '2026-03-29T01:00:00.000Z', // 03:00 CEST, the first instant after the gap
        '2026-03-30T00:30:00.000Z', // 02:30 CEST
      ]);
    });

    it('a fall-back day, whose 02:30 comes twice, fires once, at the first', () => {
      // 2026-10-25: clocks go back from 03:00 CEST to 02:00 CET.
      expect(firings('30 2 * * *', 'Europe/Berlin', '2026-10-24T00:00:00Z', '2026-10-26T23:00:00Z')).to.deep.equal([
        '2026-10-24T00:30:00.000Z', // 02:30 CEST
        '2026-10-25T00:30:00.000Z', // 02:30 CEST; not again at 01:30Z (02:30 CET)
        '2026-10-26T01:30:00.000Z', // 02:30 CET
      ]);
    });

    it('an empty time zone is UTC', () => {
      expect(firings('30 2 * * *', '', '2026-03-28T00:00:00Z', '2026-03-29T23:00:00Z')).to.deep.equal([
        '2026-03-28T02:30:00.000Z',
        '2026-03-29T02:30:00.000Z',
      ]);
    });
  });

  it('dueSlots: the slots after the last one up to now, oldest first, at most the latest `keep`', () => {
    const cron = cronOf('* * * * * *', '');
    expect(dueSlots(cron, 10_000, 13_500, 10)).to.deep.equal([11_000, 12_000, 13_000]);
    expect(dueSlots(cron, 10_000, 13_000, 10)).to.deep.equal([11_000, 12_000, 13_000]);
    expect(dueSlots(cron, 10_000, 10_999, 10)).to.deep.equal([]);
    // A long outage of an every-second schedule is not walked slot by slot.
    expect(dueSlots(cron, 0, 86_400_000 * 7, 3)).to.deep.equal([86_400_000 * 7 - 2000, 86_400_000 * 7 - 1000, 86_400_000 * 7]);
  });

  describe('planSlots', () => {
    const leadingSince = 100_000;
    it('a slot that came while this manager led runs, however late the tick', () => {
      expect(planSlots([110_000], 190_000, leadingSince, 0)).to.deep.equal({ run: { slot: 110_000, outcome: 'ran' }, missed: [] });
    });
    it('slots from before it led: the latest is made up once within the starting deadline, the rest are missed', () => {
      expect(planSlots([70_000, 80_000, 90_000], 101_000, leadingSince, 30_000)).to.deep.equal({
        run: { slot: 90_000, outcome: 'caught-up' },
        missed: [70_000, 80_000],
      });
    });
    it('past the starting deadline (or with none) every one is missed', () => {
      expect(planSlots([70_000, 90_000], 101_000, leadingSince, 5_000)).to.deep.equal({ missed: [70_000, 90_000] });
      expect(planSlots([90_000], 101_000, leadingSince, 0)).to.deep.equal({ missed: [90_000] });
    });
    it('missed slots before one that came while leading are recorded missed; that one runs', () => {
      expect(planSlots([90_000, 100_000, 110_000], 111_000, leadingSince, 60_000)).to.deep.equal({
        run: { slot: 110_000, outcome: 'ran' },
        missed: [90_000],
      });
    });
  });

  it('overlap: skip and replace only while the previous run has not ended; allow always submits', () => {
    expect(overlapAction('skip', true)).to.equal('skip');
    expect(overlapAction('replace', true)).to.equal('replace');
    expect(overlapAction('allow', true)).to.equal('submit');
    for (const o of ['skip', 'replace', 'allow']) expect(overlapAction(o, false)).to.equal('submit');
  });

  it('record keeps the newest runs first, at most history', () => {
    const s = create(ScheduleSchema, { history: 3, runs: [run(2000, 'ran', 'a'), run(1000, 'ran', 'b')] });
    record(s, [run(3000, 'missed'), run(4000, 'caught-up', 'c')]);
    expect(s.runs.map((r) => [Number(r.slotUnixMs), r.outcome])).to.deep.equal([
      [4000, 'caught-up'],
      [3000, 'missed'],
      [2000, 'ran'],
    ]);
  });

  it('one key per slot: schedule:<name>:<slot ms>; a trigger has its own', () => {
    expect(slotKey('nightly', 1_700_000_000_000)).to.equal('schedule:nightly:1700000000000');
    expect(slotKey('nightly', 1_700_000_000_000, true)).to.equal('schedule:nightly:1700000000000:trigger');
  });

  describe('validateSchedule', () => {
    const ok = () => create(ScheduleSchema, { name: 'backup', cron: '*/15 * * * *', spec: { argv: ['true'] } });
    const refusal = (change: (s: ReturnType<typeof ok>) => void) => {
      const s = ok();
      change(s);
      try {
        validateSchedule(s);
      } catch (err) {
        return (err as Error).message;
      }
      return 'accepted';
    };
    it('fills the defaults: overlap skip, history 10', () => {
      const s = ok();
      validateSchedule(s);
      expect([s.overlap, s.history]).to.deep.equal(['skip', 10]);
    });
    it('refuses a bad cron expression with the parser message', () => {
      expect(refusal((s) => (s.cron = '61 * * * *'))).to.equal('cron: CronPattern: Invalid value for minute: 61');
    });
    it('refuses names, time zones, overlaps, histories and specs that are not valid', () => {
      expect(refusal((s) => (s.name = 'Bad_Name'))).to.match(/^name: /);
      expect(refusal((s) => (s.name = 'a'.repeat(64)))).to.match(/^name: /);
      expect(refusal((s) => (s.timeZone = 'Mars/Base'))).to.match(/^time_zone: "Mars\/Base" is not an IANA time zone/);
      expect(refusal((s) => (s.overlap = 'queue'))).to.match(/^overlap: must be one of skip, allow, replace/);
      expect(refusal((s) => (s.history = 101))).to.equal('history: at most 100');
      expect(refusal((s) => (s.spec = undefined))).to.match(/^spec: /);
      expect(refusal((s) => (s.spec!.argv = []))).to.match(/^spec.argv: /);
      expect(refusal((s) => (s.spec!.env = { BIG: 'x'.repeat(70_000) }))).to.match(/^spec: is \d+ bytes; at most 65536/);
      expect(refusal((s) => (s.timeZone = 'Europe/Berlin'))).to.equal('accepted');
    });
  });
});
