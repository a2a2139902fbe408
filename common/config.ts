// Loads a YAML config file and validates it with a zod schema. Every failure
// becomes a ConfigError whose one-line message names the file and the key.
import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { durationRangeError, parseDurationValue } from './duration.js';
import { memoryRangeError, parseMemoryValue } from './size.js';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** A duration with units ("1s", "250ms"); a bare number is refused, as in flags (parseDurationValue). */
export const duration = () =>
  z.union([z.string(), z.number()]).transform((value, ctx) => {
    try {
      return parseDurationValue(value);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

/**
 * A duration within [min, max] milliseconds; outside, the key's error says the
 * range: "ack_timeout: must be between 100ms and 10m, got 0s". Every duration
 * key of the three configs uses this.
 */
export const durationIn = (min: number, max: number) =>
  duration().superRefine((ms, ctx) => {
    const error = durationRangeError(ms, { min, max });
    if (error) ctx.addIssue({ code: 'custom', message: error });
  });

/** host:port with a port in range; the host may be empty ("":7070 style is refused). */
export const hostPort = () =>
  z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/, 'expected host:port, e.g. 127.0.0.1:7070');

/** Bytes as a whole number with a unit: "512Mi", "4Gi", "2G", "1000B"; a bare number is refused, as in flags (size.ts). */
export const memory = () =>
  z.union([z.number(), z.string()]).transform((value, ctx) => {
    try {
      return parseMemoryValue(value);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

/** Bytes (as memory() reads them) within [min, max]: "log_max_size: must be between 1Ki and 1Ti, got 12". */
export const memoryIn = (min: number, max: number) =>
  z.union([z.number(), z.string()]).transform((value, ctx) => {
    // Where 0 is allowed it needs no unit (0 of anything is 0): `memory_headroom: 0`.
    if (min === 0 && /^\s*0+\s*[A-Za-z]*\s*$/.test(String(value))) return 0;
    try {
      const bytes = parseMemoryValue(value);
      const error = memoryRangeError(bytes, { min, max });
      if (!error) return bytes;
      ctx.addIssue({ code: 'custom', message: error });
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
    }
    return z.NEVER;
  });

/** A number within [min, max] (whole when `int`): "missed_pings: must be a whole number between 1 and 100, got 0". */
export const numberIn = (min: number, max: number, { int = false } = {}) =>
  z.number().superRefine((n, ctx) => {
    if ((!int || Number.isInteger(n)) && n >= min && n <= max) return;
    ctx.addIssue({ code: 'custom', message: `must be ${int ? 'a whole number' : 'a number'} between ${min} and ${max}, got ${n}` });
  });

export const logLevel = () => z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);

function describeIssue(issue: z.core.$ZodIssue): string {
  const key = issue.path.length ? issue.path.join('.') : '(top level)';
  if (issue.code === 'invalid_type' && /received undefined$/.test(issue.message)) return `${key}: required key is missing`;
  if (issue.code === 'unrecognized_keys') {
    const prefix = issue.path.length ? `${issue.path.join('.')}.` : '';
    return `unknown key ${issue.keys.map((k) => prefix + k).join(', ')}`;
  }
  return `${key}: ${issue.message}`;
}

export function parseConfig<S extends z.ZodType>(file: string, text: string, schema: S): z.output<S> {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, lineCounter });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const pos = lineCounter.linePos(e.pos[0]);
    const where = ` (line ${pos.line}, column ${pos.col})`;
    throw new ConfigError(`${file}: invalid YAML${where}: ${e.message.split('\n')[0]}`);
  }
  const raw: unknown = doc.toJS() ?? {};
  const result = schema.safeParse(raw);
  if (!result.success) {
    // An unknown key (often a typo) explains the other issues best, so it is reported first.
    const issues = [...result.error.issues].sort((a, b) => Number(b.code === 'unrecognized_keys') - Number(a.code === 'unrecognized_keys'));
    throw new ConfigError(`${file}: ${describeIssue(issues[0]!)}`);
  }
  return result.data;
}

export function loadConfig<S extends z.ZodType>(file: string, schema: S): z.output<S> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
    throw new ConfigError(`${file}: cannot read config: ${why}`);
  }
  return parseConfig(file, text, schema);
}
