// The pure rules of schedules: what a valid schedule is, which time slots its
// cron expression gives, and what to do with the slots due at a moment. No I/O,
// no timers, no clock of its own (the caller passes the leader's wall clock).
//
// Time zones and daylight saving are croner's: a slot that a spring-forward skips
// (02:30 on a day that jumps from 02:00 to 03:00) runs at the first instant after
// the gap (03:00); a time that a fall-back repeats (02:30 twice) runs once, at its
// first occurrence.
import { create } from '@bufbuild/protobuf';
import { Cron } from 'croner';
import { ScheduleRunSchema, type Schedule, type ScheduleRun } from '../../../proto/gen/schedapi/v1/types_pb.js';
import { InvalidArgumentError } from '../../../common/errors.js';
import { validateSpec } from '../task-rules.js';

export const OVERLAPS = ['skip', 'allow', 'replace'] as const;
export type Overlap = (typeof OVERLAPS)[number];

const NAME = /^[a-z][a-z0-9-]{0,62}$/;
export const DEFAULT_HISTORY = 10;
export const MAX_HISTORY = 100;
// A record is bounded by its parts: a spec of at most 64 KiB (validateSpec), a cron expression
// of at most 256 characters and at most 100 runs of under 100 bytes: far below a txn's size.
const MAX_CRON_CHARS = 256;

/** The parsed cron expression of a schedule, in its time zone; never started (we fire it ourselves). */
export function cronOf(expr: string, timeZone: string): Cron {
  return new Cron(expr, { timezone: timeZone || 'UTC', paused: true });
}

/** The first slot strictly after `afterMs`, or 0 when there is none (e.g. a date that is past). */
export function nextSlot(cron: Cron, afterMs: number): number {
  return cron.nextRun(new Date(afterMs))?.getTime() ?? 0;
}

/**
 * dueSlots: the slots after lastSlot up to and including now, oldest first; at most `keep`
 * (the latest ones: older ones would only be recorded missed and fall out of the history).
 */
export function dueSlots(cron: Cron, lastSlot: number, now: number, keep: number): number[] {
  if (now <= lastSlot) return [];
  return cron
    .previousRuns(Math.max(1, keep), new Date(now + 1))
    .map((d) => d.getTime())
    .filter((t) => t > lastSlot && t <= now)
    .reverse();
}

export interface SlotPlan {
  /** The slot to run now, if any, and how its run is recorded. */
  run?: { slot: number; outcome: 'ran' | 'caught-up' };
  /** Slots recorded missed, oldest first. */
  missed: number[];
}

/**
 * planSlots decides what the due slots (oldest first) become. A slot at or after `leadingSince`
 * came while this manager led: it runs (however late the tick was). Older ones were missed (no
 * manager led at their time): the latest is made up once if no more than startingDeadlineMs
 * late, and the rest are recorded missed.
 */
export function planSlots(due: readonly number[], now: number, leadingSince: number, startingDeadlineMs: number): SlotPlan {
  if (due.length === 0) return { missed: [] };
  const latest = due[due.length - 1]!;
  const earlier = due.slice(0, -1);
  if (latest >= leadingSince) return { run: { slot: latest, outcome: 'ran' }, missed: earlier.filter((s) => s < leadingSince) };
  if (startingDeadlineMs > 0 && now - latest <= startingDeadlineMs) return { run: { slot: latest, outcome: 'caught-up' }, missed: earlier };
  return { missed: [...due] };
}

/** What a due run does while the previous run's task has not ended. */
export function overlapAction(overlap: string, previousRunning: boolean): 'submit' | 'skip' | 'replace' {
  if (!previousRunning) return 'submit';
  return overlap === 'allow' ? 'submit' : overlap === 'replace' ? 'replace' : 'skip';
}

/** record puts runs at the head of the history (newest first), keeping at most `history`. */
export function record(s: Schedule, runs: ScheduleRun[]): void {
  const newest = [...runs].sort((a, b) => Number(b.slotUnixMs - a.slotUnixMs));
  s.runs = [...newest, ...s.runs].slice(0, historyOf(s));
}

export const run = (slot: number, outcome: string, taskId = ''): ScheduleRun =>
  create(ScheduleRunSchema, { slotUnixMs: BigInt(slot), outcome, taskId });

export const historyOf = (s: Pick<Schedule, 'history'>): number => s.history || DEFAULT_HISTORY;

/** The idempotency key of a slot's task: one slot can never make two tasks, whoever retries. */
export const slotKey = (name: string, slot: number, triggered = false): string => `schedule:${name}:${slot}${triggered ? ':trigger' : ''}`;

/**
 * validateSchedule checks a CreateSchedule request's schedule and fills its defaults (overlap
 * skip, history 10); returns its parsed cron. Each refusal names the field.
 */
export function validateSchedule(s: Schedule): Cron {
  if (!NAME.test(s.name)) throw new InvalidArgumentError('name', 'must be 1-63 of [a-z0-9-], starting with a letter');
  if (!s.cron.trim()) throw new InvalidArgumentError('cron', 'must be a cron expression, e.g. "*/15 * * * *"');
  if (s.cron.length > MAX_CRON_CHARS) throw new InvalidArgumentError('cron', `at most ${MAX_CRON_CHARS} characters`);
  if (s.timeZone) {
    try {
      new Intl.DateTimeFormat('en', { timeZone: s.timeZone });
    } catch {
      throw new InvalidArgumentError('time_zone', `${JSON.stringify(s.timeZone)} is not an IANA time zone (e.g. Europe/Berlin)`);
    }
  }
  let cron: Cron;
  try {
    cron = cronOf(s.cron, s.timeZone);
  } catch (err) {
    throw new InvalidArgumentError('cron', (err as Error).message);
  }
  s.overlap ||= 'skip';
  if (!(OVERLAPS as readonly string[]).includes(s.overlap)) {
    throw new InvalidArgumentError('overlap', `must be one of ${OVERLAPS.join(', ')}, not ${JSON.stringify(s.overlap)}`);
  }
  s.history ||= DEFAULT_HISTORY;
  if (s.history > MAX_HISTORY) throw new InvalidArgumentError('history', `at most ${MAX_HISTORY}`);
  if (!s.spec) throw new InvalidArgumentError('spec', 'must give the task to run');
  validateSpec(s.spec);
  return cron;
}
