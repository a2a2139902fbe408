// setTimeout for any delay: Node fires a timer of 2^31 ms or more at once
// (with a warning), yet task timeouts (uint32 ms) reach about 49 days. A long
// delay is a chain of timers of at most MAX_TIMER_MS each.

/** The longest delay one Node timer can wait. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface LongTimer {
  /** Stops the timer; fn will not run. Harmless after it fired. */
  clear(): void;
  /** Lets the process exit while the timer waits (like Timeout.unref). */
  unref(): LongTimer;
  ref(): LongTimer;
}

/** The timer functions used; tests pass fakes to follow the chain without waiting. */
export interface TimerFunctions {
  setTimeout(fn: () => void, ms: number): { unref(): unknown; ref(): unknown };
  clearTimeout(handle: unknown): void;
}

const nodeTimers: TimerFunctions = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/**
 * Runs fn once after ms milliseconds (negative or NaN: as soon as possible,
 * Infinity: never). The remainder is counted down per link rather than read
 * from the wall clock, so a clock change does not move the deadline.
 */
export function setLongTimeout(fn: () => void, ms: number, timers: TimerFunctions = nodeTimers): LongTimer {
  let remaining = ms > 0 ? ms : 0;
  let refed = true;
  let cleared = false;
  let handle: ReturnType<TimerFunctions['setTimeout']>;
  const schedule = (): void => {
    const step = Math.min(remaining, MAX_TIMER_MS);
    remaining -= step;
    handle = timers.setTimeout(() => {
      if (cleared) return;
      if (remaining > 0) return schedule();
      cleared = true;
      fn();
    }, step);
    if (!refed) handle.unref();
  };
  schedule();
  const timer: LongTimer = {
    clear() {
      cleared = true;
      timers.clearTimeout(handle);
    },
    unref() {
      refed = false;
      handle.unref();
      return timer;
    },
    ref() {
      refed = true;
      handle.ref();
      return timer;
    },
  };
  return timer;
}

/** Clears a timer that may not exist. */
export function clearLongTimeout(timer: LongTimer | undefined): void {
  timer?.clear();
}
