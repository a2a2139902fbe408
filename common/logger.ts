import { pino, type Logger } from 'pino';

export type { Logger };

/** createLogger writes JSON lines to stderr so stdout stays free for program output. */
export function createLogger(name: string, level: string): Logger {
  return pino({ name, level, base: { name } }, pino.destination({ fd: 2, sync: true }));
}
