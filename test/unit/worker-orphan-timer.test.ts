import { expect } from 'chai';
import type { TimerFunctions } from '../../common/long-timer.js';
import { MIN_REDIAL_CAP_MS, OrphanTimer } from '../../worker-node/src/orphan-timer.js';

/** A fake clock with timers that run when advance() passes their time. */
class FakeTime implements TimerFunctions {
  now = 1000;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private nextId = 1;
  setTimeout(fn: () => void, ms: number) {
    const id = this.nextId++;
    this.timers.push({ at: this.now + ms, fn, id });
    return { unref: () => id, ref: () => id, id };
  }
  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((t) => t.id !== (handle as { id: number }).id);
  }
  get pending(): number {
    return this.timers.length;
  }
  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.now = due.at;
      due.fn();
    }
    this.now = end;
  }
}

describe('worker orphan timer', () => {
  let time: FakeTime;
  let fired: [number, number][];
  let timer: OrphanTimer;
  beforeEach(() => {
    time = new FakeTime();
    fired = [];
    timer = new OrphanTimer({ onOrphaned: (silent, timeout) => fired.push([silent, timeout]), now: () => time.now, timers: time });
  });

  it('fires the timeout after the last message heard, not after the loss was noticed', () => {
    timer.welcome(10_000);
    time.advance(4000);
    timer.heard();
    time.advance(3000); // a silent manager is noticed late (the ping watchdog)
    timer.lost();
    time.advance(6999);
    expect(fired).to.deep.equal([]);
    time.advance(1);
    expect(fired).to.deep.equal([[10_000, 10_000]]);
  });

  it('fires once per outage, however many redials fail after it', () => {
    timer.welcome(1000);
    timer.lost();
    time.advance(1000);
    timer.lost();
    timer.lost();
    time.advance(10_000);
    expect(fired).to.have.length(1);
    expect(time.pending).to.equal(0);
    // A new session and a new outage: it counts again.
    timer.welcome(1000);
    timer.lost();
    time.advance(1000);
    expect(fired).to.have.length(2);
  });

  it('is stopped by the next Welcome, and keeps one timer however often the stream is lost', () => {
    timer.welcome(1000);
    timer.lost();
    timer.lost();
    expect(time.pending).to.equal(1);
    time.advance(900);
    timer.welcome(1000);
    expect(time.pending).to.equal(0);
    time.advance(5000);
    expect(fired).to.deep.equal([]);
  });

  it('counts again from a message heard while cut off without a Welcome', () => {
    timer.welcome(1000);
    timer.lost();
    time.advance(800);
    timer.heard();
    time.advance(500); // the first deadline passes: it re-arms for the rest
    expect(fired).to.deep.equal([]);
    time.advance(500);
    expect(fired).to.deep.equal([[1000, 1000]]);
  });

  it('never fires with timeout 0 (the default, or a manager that turns it off)', () => {
    timer.lost();
    timer.welcome(0);
    timer.lost();
    time.advance(10 ** 9);
    expect(fired).to.deep.equal([]);
    expect(time.pending).to.equal(0);
  });

  it('caps the redial delay at a quarter of the timeout, within reconnect_max and above a floor', () => {
    expect(timer.redialCap(30_000)).to.equal(30_000);
    timer.welcome(20_000);
    expect(timer.redialCap(30_000)).to.equal(5000);
    expect(timer.redialCap(2000)).to.equal(2000);
    timer.welcome(40);
    expect(timer.redialCap(30_000)).to.equal(MIN_REDIAL_CAP_MS);
  });
});
