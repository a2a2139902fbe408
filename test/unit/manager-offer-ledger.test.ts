// The offer ledger on its own: ack deadlines in order, withdrawal with a second
// deadline, and offers closed meanwhile never coming due.
import { expect } from 'chai';
import { OfferLedger } from '../../management-node/src/offer-ledger.js';

describe('offer ledger', () => {
  it('an unanswered offer comes due after the ack timeout, and once withdrawn, after another', () => {
    const ledger = new OfferLedger(500);
    const a = ledger.add('a', 1, 'w1', 0);
    ledger.add('b', 1, 'w2', 100);
    expect(ledger.due(499)).to.deep.equal([]);
    expect(ledger.due(500)).to.deep.equal([a]);
    ledger.withdraw(a, 500);
    expect(ledger.withdrawnFrom('a', 'w1', 1)).to.be.true;
    expect(ledger.withdrawnFrom('a', 'w1', 2)).to.be.false;
    expect(ledger.withdrawnFrom('a', 'w2', 1)).to.be.false;
    expect(ledger.due(999).map((o) => o.taskId)).to.deep.equal(['b']);
    expect(ledger.due(1000)).to.deep.equal([a]);
    expect(a.withdrawn).to.be.true;
  });

  it('matches an offer by task, worker and attempt; a closed or replaced offer never comes due', () => {
    const ledger = new OfferLedger(500);
    ledger.add('a', 1, 'w1', 0);
    ledger.add('b', 1, 'w1', 0);
    ledger.add('c', 1, 'w2', 0);
    expect(ledger.of('a', 'w1', 1)).to.include({ taskId: 'a' });
    expect(ledger.of('a', 'w2', 1)).to.be.undefined;
    expect(ledger.toWorker('w1').map((o) => o.taskId)).to.deep.equal(['a', 'b']);
    ledger.close('a');
    const again = ledger.add('b', 2, 'w2', 200);
    expect(ledger.size).to.equal(2);
    expect(ledger.due(600).map((o) => o.taskId)).to.deep.equal(['c']);
    expect(ledger.due(700)).to.deep.equal([again]);
  });
});
