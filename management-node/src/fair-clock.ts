// The clock the manager judges other parties' deadlines by (ack timeouts,
// missed pongs, reconnect grace). It advances with real time, but by at most
// maxStepMs per reading: while the manager's own event loop is stalled or
// starved of CPU, the workers' answers wait unread on its sockets, and that
// time is not held against them.
export interface FairClock {
  /** Reads the clock, advancing it by the real time since the last reading (capped). */
  advance(): number;
  /** The clock as of the last advance(). */
  readonly value: number;
  /** Real time the clock has not counted so far: how long the manager was stalled. */
  readonly stalledMs: number;
}

export function createFairClock(now: () => number, maxStepMs = Number.POSITIVE_INFINITY): FairClock {
  let last = now();
  let fair = last;
  let stalled = 0;
  return {
    advance() {
      const t = now();
      const step = Math.max(0, t - last);
      last = t;
      const counted = Math.min(step, maxStepMs);
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
  };
}
