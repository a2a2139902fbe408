// tasks run's gate flags and task file fields: --at/--in, --after lists (gate-flags.ts, batch-file.ts).
import { expect } from 'chai';
import { parseBatch } from '../../schedctl/src/batch-file.js';
import { collectIds, notBeforeOf, parseTime } from '../../schedctl/src/gate-flags.js';
import { specFromOptions } from '../../schedctl/src/commands/tasks-run.js';

describe('schedctl: gate flags', () => {
  it('--at takes ISO 8601 with a zone (Z or an offset, with or without a colon), and nothing else', () => {
    expect(parseTime('2026-12-01T03:00Z')).to.equal(Date.UTC(2026, 11, 1, 3));
    expect(parseTime('2026-12-01T04:00+01:00')).to.equal(Date.UTC(2026, 11, 1, 3));
    expect(parseTime('2026-12-01 04:00:30.5+0100')).to.equal(Date.UTC(2026, 11, 1, 3, 0, 30, 500));
    expect(parseTime('2026-12-01T00:00-03')).to.equal(Date.UTC(2026, 11, 1, 3));
    for (const bad of ['2026-12-01T03:00', '2026-12-01', 'tomorrow', '2026-13-01T03:00Z']) expect(() => parseTime(bad), bad).to.throw();
  });

  it('--after takes comma lists and repeats; --in is from now', () => {
    expect(collectIds('b, c', collectIds('a'))).to.deep.equal(['a', 'b', 'c']);
    expect(() => collectIds('a,,b')).to.throw(/separated by commas/);
    expect(notBeforeOf({ in: 600_000 }, 1_000)).to.equal(601_000n);
    expect(notBeforeOf({}, 1_000)).to.equal(0n);
    const spec = specFromOptions(['true'], { after: ['a'], afterAny: ['g'], afterFailed: ['x'], at: 5 });
    expect(spec).to.deep.include({ afterOk: ['a'], afterAny: ['g'], afterFailed: ['x'], notBeforeUnixMs: 5n });
  });

  it('task files take after_ok/after_any/after_failed (an id, a comma list or a list), at and in, not both', () => {
    const [e] = parseBatch('- {cmd: "true", after_ok: "a,b", after_any: [c], after_failed: d, in: 10m}', 'f');
    expect(e).to.deep.include({ after: ['a', 'b'], afterAny: ['c'], afterFailed: ['d'], in: 600_000 });
    const [f] = parseBatch('- {cmd: "true", at: "2026-12-01T03:00Z"}', 'f');
    expect(f!.at).to.equal(Date.UTC(2026, 11, 1, 3));
    expect(() => parseBatch('- {cmd: "true", at: "2026-12-01T03:00Z", in: 1m}', 'f')).to.throw(/entry 1: at: give at \(a time\) or in \(a delay\), not both/);
    expect(() => parseBatch('- {cmd: "true", at: "soon"}', 'f')).to.throw(/entry 1: at: expected an ISO 8601 time/);
  });
});
