import { expect } from 'chai';
import { newTaskId } from '../../common/ids.js';

describe('newTaskId', () => {
  it('is a version-7 UUID', () => {
    expect(newTaskId()).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('sorts in creation order, also within one millisecond and past 4,096 ids in it', () => {
    const now = Date.now() + 10_000;
    const ids = Array.from({ length: 10_000 }, () => newTaskId(now));
    expect([...ids].sort()).to.deep.equal(ids);
    expect(new Set(ids).size).to.equal(ids.length);
    expect(newTaskId(now + 10) > ids[ids.length - 1]!).to.equal(true);
  });
});
