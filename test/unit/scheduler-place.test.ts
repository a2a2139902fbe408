import { expect } from 'chai';
import { pickWorker, type WorkerView } from '../../management-node/src/scheduler/place.js';

const w = (id: string, load: number, slots = 1, extra: Partial<WorkerView> = {}): WorkerView => ({
  id,
  connected: true,
  draining: false,
  load,
  slots,
  ...extra,
});

describe('scheduler core: pickWorker', () => {
  const cases: Array<[string, WorkerView[], Set<string>, string | undefined]> = [
    ['no workers', [], new Set(), undefined],
    ['least loaded wins', [w('a', 2, 4), w('b', 1, 4)], new Set(), 'b'],
    ['load is relative to slots', [w('a', 2, 8), w('b', 1, 2)], new Set(), 'a'],
    ['full workers are skipped', [w('a', 0, 0), w('b', 3, 4)], new Set(), 'b'],
    ['nothing free', [w('a', 1, 1), w('b', 4, 4)], new Set(), undefined],
    ['ties go to the lower id', [w('b', 0), w('a', 0)], new Set(), 'a'],
    ['disconnected workers are skipped', [w('a', 0, 1, { connected: false }), w('b', 5, 9)], new Set(), 'b'],
    ['draining workers are skipped', [w('a', 0, 1, { draining: true }), w('b', 5, 9)], new Set(), 'b'],
    ['excluded workers are skipped', [w('a', 0), w('b', 5, 9)], new Set(['a']), 'b'],
    ['nothing feasible', [w('a', 0, 1, { draining: true })], new Set(), undefined],
  ];
  for (const [name, workers, excluded, want] of cases) {
    it(name, () => expect(pickWorker(workers, excluded)?.id).to.equal(want));
  }
});
