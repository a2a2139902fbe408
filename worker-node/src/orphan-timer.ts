// Welcome.orphan_timeout_ms: a worker cut off from its manager for that long,
// counted from the last message it received on any stream, kills its tasks
// and reports them lost. The manager gives them up after its reconnect grace,
// which is longer, so a retry elsewhere never overlaps them.
import { setLongTimeout, type LongTimer, type TimerFunctions } from '../../common/long-timer.js';

/** Redials while cut off are never spaced by less than this, whatever the timeout. */
export const MIN_REDIAL_CAP_MS = 100;

export interface OrphanTimerOptions {
  /** Called once per outage when the timeout passes; silentMs is the time since the last message. */
  onOrphaned: (silentMs: number, timeoutMs: number) => void;
  /** A monotonic clock in ms; wall-clock jumps must not kill tasks. */
  now?: () => number;
  timers?: TimerFunctions;
}

/** One timer, armed when the stream is lost and cleared by the next Welcome. */
export class OrphanTimer {
  /** From the last Welcome; 0 = never. */
  timeoutMs = 0;
  private lastHeard: number;
  private timer: LongTimer | undefined;
  /** Fired in this outage: failed redials do not fire it again. */
  private expired = false;
  private readonly now: () => number;

  constructor(private readonly o: OrphanTimerOptions) {
    this.now = o.now ?? (() => performance.now());
    this.lastHeard = this.now();
  }

  /** Any message from the manager, on any stream. */
  heard(): void {
    this.lastHeard = this.now();
  }

  /** A Welcome: connected again, with the manager's current timeout. */
  welcome(timeoutMs: number): void {
    this.heard();
    this.timeoutMs = timeoutMs;
    this.expired = false;
    this.clear();
  }

  /** The stream is lost: the deadline is the last message plus the timeout (armed once per outage). */
  lost(): void {
    if (this.timeoutMs <= 0 || this.timer || this.expired) return;
    this.arm();
  }

  clear(): void {
    this.timer?.clear();
    this.timer = undefined;
  }

  /** The longest pause between redials: a quarter of the timeout, so a manager back in time is found before the tasks are killed. */
  redialCap(maxMs: number): number {
    return this.timeoutMs > 0 ? Math.min(maxMs, Math.max(MIN_REDIAL_CAP_MS, Math.floor(this.timeoutMs / 4))) : maxMs;
  }

  private arm(): void {
    const left = this.lastHeard + this.timeoutMs - this.now();
    this.timer = setLongTimeout(
      () => {
        this.timer = undefined;
        const silentMs = this.now() - this.lastHeard;
        if (silentMs < this.timeoutMs) return this.arm(); // heard from it meanwhile, yet no Welcome
        this.expired = true;
        this.o.onOrphaned(Math.round(silentMs), this.timeoutMs);
      },
      Math.max(0, left),
      this.o.timers,
    );
  }
}
