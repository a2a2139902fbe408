import { expect } from 'chai';
import { MAX_TIMER_MS, setLongTimeout, type TimerFunctions } from '../../common/long-timer.js';

/** Fake timers: records each link's delay; fire() runs the pending one as if its time had come. */
class FakeTimers implements TimerFunctions {
  delays: number[] = [];
  pending: (() => void) | undefined;
  refs: boolean[] = [];
  setTimeout(fn: () => void, ms: number) {
    this.delays.push(ms);
    this.pending = fn;
    const i = this.refs.push(true) - 1;
    return {
      unref: () => (this.refs[i] = false),
      ref: () => (this.refs[i] = true),
    };
  }
  clearTimeout(): void {
    this.pending = undefined;
  }
  fire(): void {
    const fn = this.pending;
    this.pending = undefined;
    fn?.();
  }
}

describe('common long timer', () => {
  it('waits a delay past 2^31 ms as a chain of timers no longer than Node allows', () => {
    const timers = new FakeTimers();
    let fired = 0;
    const ms = 2 ** 32 - 1; // the longest task timeout (uint32 ms, about 49.7 days)
    setLongTimeout(() => fired++, ms, timers);
    expect(timers.delays).to.deep.equal([MAX_TIMER_MS]);
    timers.fire();
    expect(fired).to.equal(0);
    expect(timers.delays).to.deep.equal([MAX_TIMER_MS, MAX_TIMER_MS]);
    timers.fire();
    expect(fired).to.equal(0);
    expect(timers.delays).to.deep.equal([MAX_TIMER_MS, MAX_TIMER_MS, 1]);
    timers.fire();
    expect(fired).to.equal(1);
    expect(timers.pending).to.equal(undefined);
    expect(timers.delays.reduce((a, b) => a + b)).to.equal(ms);
  });

  it('uses one timer for a short delay, and 0 for a negative or NaN one', () => {
    for (const [ms, first] of [[1000, 1000], [MAX_TIMER_MS, MAX_TIMER_MS], [-5, 0], [NaN, 0]] as const) {
      const timers = new FakeTimers();
      let fired = false;
      setLongTimeout(() => (fired = true), ms, timers);
      expect(timers.delays).to.deep.equal([first]);
      timers.fire();
      expect(fired, String(ms)).to.equal(true);
    }
  });

  it('never fires for Infinity', () => {
    const timers = new FakeTimers();
    let fired = false;
    setLongTimeout(() => (fired = true), Infinity, timers);
    for (let i = 0; i < 5; i++) timers.fire();
    expect(fired).to.equal(false);
    expect(timers.delays).to.deep.equal(Array(6).fill(MAX_TIMER_MS));
  });

  it('clear() stops the chain at any link', () => {
    const timers = new FakeTimers();
    let fired = false;
    const t = setLongTimeout(() => (fired = true), 3 * MAX_TIMER_MS, timers);
    timers.fire();
    t.clear();
    expect(timers.pending).to.equal(undefined);
    expect(fired).to.equal(false);
    expect(timers.delays).to.have.length(2);
  });

  it('unref() applies to the current link and every later one; ref() undoes it', () => {
    const timers = new FakeTimers();
    const t = setLongTimeout(() => undefined, 3 * MAX_TIMER_MS, timers).unref();
    timers.fire();
    expect(timers.refs).to.deep.equal([false, false]);
    t.ref();
    timers.fire();
    expect(timers.refs).to.deep.equal([false, true, true]);
  });

  it('fires with the real timers, and not once cleared', async () => {
    const fired = await new Promise<boolean>((resolve) => setLongTimeout(() => resolve(true), 5));
    expect(fired).to.equal(true);
    let late = false;
    setLongTimeout(() => (late = true), 1).clear();
    await new Promise((r) => setTimeout(r, 20)); // a later timer: the cleared one would have run first
    expect(late).to.equal(false);
  });
});
