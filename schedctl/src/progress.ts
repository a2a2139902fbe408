// A progress bar on stderr for waits over many tasks and batch submissions.
// Only on a terminal: stdout stays data (ids, JSON), and without a terminal
// the callers print one plain line per thing done instead. The bar is
// cleared when it stops, so what is left on the screen is the lines said.
import { MultiBar, type SingleBar } from 'cli-progress';
import type { CliIo } from './commands/context.js';

/** Whether stderr is a terminal, as the io says (main.ts asks the process's stderr; a test's io says no). */
export function stderrIsTTY(io: CliIo): boolean {
  return io.errIsTTY === true;
}

export interface Progress {
  /** Whether a bar is drawn (else say() is a plain line on stderr). */
  readonly drawn: boolean;
  /** A line for the operator, above the bar when there is one. */
  say(line: string): void;
  /** `value` of the total is done; `counts` says what the rest is doing. */
  update(value: number, counts: string): void;
  /** Clears the bar; the lines said stay. Idempotent. */
  stop(): void;
}

/** A bar over `total` things on a terminal (stderr); without one, say() writes to stderr and the rest does nothing. */
export function startProgress(io: CliIo, total: number, label: string): Progress {
  if (!stderrIsTTY(io)) return { drawn: false, say: (line) => io.err(line), update: () => undefined, stop: () => undefined };
  const multi = new MultiBar({
    stream: process.stderr,
    format: `${label} [{bar}] {value}/{total} {counts}`,
    barsize: 24,
    clearOnComplete: true,
    // The terminal's own settings are left alone: a kill -9 would leave no hidden cursor or unwrapped lines behind.
    hideCursor: false,
    linewrap: true,
    gracefulExit: false,
  });
  const bar: SingleBar = multi.create(total, 0, { counts: '' });
  let stopped = false;
  return {
    drawn: true,
    say: (line) => (stopped ? io.err(line) : multi.log(line)),
    update: (value, counts) => {
      if (!stopped) bar.update(value, { counts });
    },
    stop: () => {
      if (stopped) return;
      stopped = true;
      multi.update(); // writes the lines still buffered by log()
      multi.stop();
    },
  };
}
