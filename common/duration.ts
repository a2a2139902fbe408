// Durations as operators write them: "500ms", "1s", "2m", "1h30m".
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;

/**
 * Milliseconds from a duration with units. A bare number is refused, in a
 * flag as in a config: "5" could mean seconds as well as milliseconds.
 */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  if (/^\d+(?:\.\d+)?$/.test(trimmed)) throw new Error(`invalid duration ${JSON.stringify(text)}: add a unit, e.g. 5s (ms, s, m or h)`);
  if (!/^(\d+(?:\.\d+)?(ms|s|m|h))+$/.test(trimmed)) {
    throw new Error(`invalid duration ${JSON.stringify(text)} (use e.g. 500ms, 10s, 2m, 1h)`);
  }
  let total = 0;
  for (const [, value, unit] of trimmed.matchAll(PART)) total += Number(value) * UNIT_MS[unit!]!;
  return Math.round(total);
}

/** parseDuration of a config's value: YAML gives `timeout: 5` as a number, refused as "5" is. */
export function parseDurationValue(value: string | number): number {
  return parseDuration(String(value));
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)}s`;
  const m = Math.floor(ms / 60_000);
  if (m < 60) return `${m}m${Math.floor((ms % 60_000) / 1000)}s`;
  return `${Math.floor(m / 60)}h${m % 60}m`;
}

/** The largest value a uint32 millisecond field of the API holds: about 49.7 days. */
export const MAX_UINT32_MS = 2 ** 32 - 1;

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/**
 * A duration in the units parseDuration reads, exactly and as briefly as they
 * allow: 0s, 250ms, 1.5s, 10m, 10m1ms, 1h30m, 720h.
 */
export function formatDurationExact(ms: number): string {
  if (ms === 0) return '0s';
  if (ms < 1000) return `${ms}ms`;
  const h = Math.floor(ms / HOUR_MS);
  const m = Math.floor((ms % HOUR_MS) / 60_000);
  const rest = ms % 60_000;
  const tail = rest === 0 ? '' : rest < 1000 ? `${rest}ms` : `${rest / 1000}s`;
  return `${h ? `${h}h` : ''}${m ? `${m}m` : ''}${tail}`;
}

/** formatDurationExact, with the days spelled out past two of them: "720h (30 days)". */
export function describeDuration(ms: number): string {
  const exact = formatDurationExact(ms);
  if (ms < 2 * DAY_MS) return exact;
  return ms % DAY_MS === 0 ? `${exact} (${ms / DAY_MS} days)` : `${exact} (about ${(ms / DAY_MS).toFixed(1)} days)`;
}

/** An allowed range of a duration setting, inclusive, in milliseconds. */
export interface DurationRange {
  min: number;
  max: number;
}

/**
 * Why ms is outside [min, max] ("must be between 100ms and 10m, got 0s"), or
 * undefined when it is inside. The one wording of every duration range check:
 * config keys (durationIn in config.ts) and command-line flags alike.
 */
export function durationRangeError(ms: number, { min, max }: DurationRange): string | undefined {
  if (Number.isFinite(ms) && ms >= min && ms <= max) return undefined;
  return `must be between ${describeDuration(min)} and ${describeDuration(max)}, got ${describeDuration(ms)}`;
}

/** parseDuration, then the range check; throws an Error with either message. */
export function parseDurationIn(text: string, range: DurationRange): number {
  const ms = parseDuration(text);
  const error = durationRangeError(ms, range);
  if (error) throw new Error(error);
  return ms;
}
