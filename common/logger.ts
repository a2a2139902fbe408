// The daemons' logs: pino records written synchronously to stderr (fd 2), so
// stdout stays free for program output and nothing is lost when a daemon exits.
// Two renderings: JSON lines for machines (log collectors, the tests), or one
// compact line per record for people at a terminal:
//   2026-11-25T22:57:00.123Z INFO  management-node: task placed task=0190… worker=w1
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

export const LOG_FORMATS = ['text', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/**
 * createLogger logs at level to stderr; format defaults to text when stderr is a terminal and
 * JSON otherwise (a file, a pipe, a supervisor's journal).
 */
export function createLogger(name: string, level: string, format?: LogFormat): Logger {
  const fd2 = pino.destination({ fd: 2, sync: true });
  const text = (format ?? (process.stderr.isTTY ? 'text' : 'json')) === 'text';
  const destination: DestinationStream = text ? { write: (line: string) => fd2.write(renderLine(line)) } : fd2;
  return pino({ name, level, base: { name } }, destination);
}

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
/** Fields every record has, shown in the line's head rather than as key=value. */
const HEAD = new Set(['time', 'level', 'name', 'msg', 'pid', 'hostname']);

/**
 * renderLine turns one of pino's JSON lines into the text form: the ISO time, the level, the
 * logger's name and the message, then the other fields as key=value; an error shows its message.
 * Every record stays on one line. A line that is not a JSON object passes unchanged.
 */
export function renderLine(json: string): string {
  let rec: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(json);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return json;
    rec = parsed as Record<string, unknown>;
  } catch {
    return json;
  }
  const time = typeof rec['time'] === 'number' ? new Date(rec['time']).toISOString() : String(rec['time'] ?? '');
  const level = (typeof rec['level'] === 'number' ? (LEVELS[rec['level']] ?? String(rec['level'])) : String(rec['level'] ?? '')).padEnd(5);
  const name = typeof rec['name'] === 'string' && rec['name'] ? `${rec['name']}: ` : '';
  let line = `${time} ${level} ${name}${oneLine(typeof rec['msg'] === 'string' ? rec['msg'] : '')}`;
  for (const [key, value] of Object.entries(rec)) {
    if (HEAD.has(key) || value === undefined) continue;
    line += ` ${key}=${renderValue(value)}`;
  }
  return `${line}\n`;
}

/** A field's value: an error (pino's err serializer gives {type, message, stack}) shows as its message. */
function renderValue(value: unknown): string {
  const err = value as { message?: unknown; stack?: unknown } | null;
  if (err !== null && typeof err === 'object' && typeof err.message === 'string' && typeof err.stack === 'string') return quote(err.message);
  if (typeof value === 'string') return quote(value);
  if (value === null || typeof value !== 'object') return String(value);
  // Objects as compact JSON, its own quotes being no ambiguity; quoted whole only with spaces inside.
  const json = JSON.stringify(value);
  return /\s/.test(json) ? JSON.stringify(json) : json;
}

/** Quoted (as a JSON string) when empty or holding spaces, quotes, '=' or control characters. */
function quote(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s === '' || /[\s"=\u0000-\u001f\u007f]/.test(s) ? JSON.stringify(s) : s;
}

/** A message with line breaks keeps to its line: they show as \n. */
// eslint-disable-next-line no-control-regex
const oneLine = (s: string): string => s.replace(/[\r\n\u0000-\u0008\u000b-\u001f\u007f]/g, (c) => JSON.stringify(c).slice(1, -1));
