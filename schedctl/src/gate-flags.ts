// The flags of tasks run that gate a task (--after, --after-any, --after-failed,
// --at, --in), shared by the command line and task files. Loaded at every start
// (register-tasks.ts), so it imports nothing heavy.
import { InvalidArgumentError } from 'commander';
import { parseDurationIn } from '../../common/duration.js';

/** The furthest --at or --in may put a task off (the manager refuses more): ten years. */
export const MAX_DELAY_MS = 10 * 366 * 24 * 3600_000;

/** Dependencies one task may name (the manager counts group members too). */
const MAX_IDS = 1000;

/** An ISO 8601 time with its zone: 2026-12-01T03:00Z, 2026-12-01 03:00:00+01:00, ...T03:00:00.5-0500. */
const ISO_WITH_ZONE = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)(Z|[+-]\d{2}(?::?\d{2})?)$/i;

/** parseTime reads --at: an ISO 8601 time with a zone (Z or an offset), as unix milliseconds. */
export function parseTime(value: string): number {
  const m = ISO_WITH_ZONE.exec(value.trim());
  if (!m) throw new Error(`expected an ISO 8601 time with its zone, e.g. 2026-12-01T03:00Z or 2026-12-01T04:00+01:00, not ${JSON.stringify(value)}`);
  let zone = m[3]!.toUpperCase();
  if (zone !== 'Z') zone = zone.length === 3 ? `${zone}:00` : zone.length === 5 ? `${zone.slice(0, 3)}:${zone.slice(3)}` : zone;
  const ms = Date.parse(`${m[1]}T${m[2]}${zone}`);
  if (!Number.isFinite(ms)) throw new Error(`${JSON.stringify(value)} is not a valid time`);
  return ms;
}

/** parseDelay reads --in: a duration with a unit (10m, 2h, 3d), at most ten years. */
export const parseDelay = (value: string): number => parseDurationIn(value, { min: 0, max: MAX_DELAY_MS });

/** Task ids in a list (comma-separated, spaces allowed), as --after and a task file's after_ok give them. */
export function splitIds(value: string): string[] {
  const ids = value.split(',').map((s) => s.trim());
  if (ids.some((id) => id === '')) throw new Error(`expected task or group ids separated by commas, not ${JSON.stringify(value)}`);
  return ids;
}

const asFlag =
  <T>(parse: (v: string) => T) =>
  (value: string): T => {
    try {
      return parse(value);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  };

/** --at for commander. */
export const parseAtFlag = asFlag(parseTime);
/** --in for commander. */
export const parseInFlag = asFlag(parseDelay);

/** --after, --after-any, --after-failed: repeatable, each a comma list; at most MAX_IDS in all. */
export function collectIds(value: string, previous: string[] = []): string[] {
  const ids = [...previous, ...asFlag(splitIds)(value)];
  if (ids.length > MAX_IDS) throw new InvalidArgumentError(`at most ${MAX_IDS} ids`);
  return ids;
}

/**
 * notBeforeOf: the spec's not_before_unix_ms from --at or --in (relative to now); 0 when neither.
 * Both at once is refused by the caller (commander's conflicts).
 */
export function notBeforeOf(opts: { at?: number | undefined; in?: number | undefined }, now: number): bigint {
  if (opts.at !== undefined) return BigInt(opts.at);
  if (opts.in !== undefined) return BigInt(now + opts.in);
  return 0n;
}
