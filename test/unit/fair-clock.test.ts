// The deadline clock: real time, minus the manager's own stalls and saturation.
import { expect } from 'chai';
import { createFairClock } from '../../management-node/src/fair-clock.js';

describe('fair clock', () => {
  it('counts real time while the event loop has room, and at most maxStep for one gap', () => {
    let now = 0;
    const c = createFairClock(() => now, 300);
    now += 250;
    expect(c.advance()).to.equal(250);
    now += 60_000; // blocked for a minute
    expect(c.advance()).to.equal(550);
    expect(c.stalledMs).to.equal(59_700);
  });

  it('slows down while the event loop is saturated, never below the minimum rate, and recovers', () => {
    let now = 0;
    const c = createFairClock(() => now, 1000, 0.1);
    c.calibrate(0.4); // under half busy: full speed
    now += 100;
    expect(c.advance()).to.equal(100);
    c.calibrate(0.75); // a quarter idle: half speed
    now += 100;
    expect(c.advance()).to.equal(150);
    c.calibrate(1); // saturated: a tenth
    now += 100;
    expect(c.advance()).to.equal(160);
    c.calibrate(Number.NaN); // no reading: full speed
    now += 100;
    expect(c.advance()).to.equal(260);
  });
});
