// The clock the manager judges other parties' deadlines by (ack timeouts,
// missed pongs, reconnect grace). It advances with real time, except for time
// the manager itself was not able to listen:
// - a gap between two readings longer than maxStepMs (the event loop was
//   blocked or the process stopped) counts as maxStepMs;
// - while the event loop is saturated (busy nearly all the time, e.g. starved
//   of CPU), answers wait unread on the sockets, so time runs slower, in
//   proportion to how little idle time the loop had (never below minRate).
export interface FairClock {
  /** Reads the clock, advancing it by the real time since the last reading (capped, scaled). */
  advance(): number;
  /** The clock as of the last advance(). */
  readonly value: number;
  /** Real time the clock has not counted so far: how long the manager was stalled or saturated. */
  readonly stalledMs: number;
  /**
   * Sets the rate from the event loop's utilization since the last call (0 idle .. 1 saturated):
   * full speed up to half busy, then slower, down to minRate when saturated.
   */
  calibrate(utilization: number): void;
}

export function createFairClock(now: () => number, maxStepMs = Number.POSITIVE_INFINITY, minRate = 0.1): FairClock {
  let last = now();
  let fair = last;
  let stalled = 0;
  let rate = 1;
  return {
    advance() {
      const t = now();
      const step = Math.max(0, t - last);
      last = t;
      const counted = Math.min(step, maxStepMs) * rate;
      stalled += step - counted;
      fair += counted;
      return fair;
    },
    get value() {
      return fair;
    },
    get stalledMs() {
      return stalled;
    },
    calibrate(utilization) {
      this.advance(); // time so far runs at the old rate
      const idle = Number.isFinite(utilization) ? 1 - Math.min(1, Math.max(0, utilization)) : 1;
      rate = Math.max(minRate, Math.min(1, idle * 2));
    },
  };
}
