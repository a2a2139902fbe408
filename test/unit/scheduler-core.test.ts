import { expect } from 'chai';
import { formatPlacementFailure } from '../../management-node/src/scheduler/explain.js';
import { constraintList, firstRejection, type WorkerFacts } from '../../management-node/src/scheduler/feasibility.js';
import { FitIndex, seededRandom } from '../../management-node/src/scheduler/fit-index.js';
import { precedes } from '../../management-node/src/scheduler/order.js';
import { liveLoad, scoreFit } from '../../management-node/src/scheduler/rank.js';
import {
  createScheduler,
  SchedulerInputError,
  type Placement,
  type Scheduler,
  type SchedulerOptions,
  type TaskRequest,
  type WorkerInfo,
} from '../../management-node/src/scheduler/scheduler.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

const worker = (id: string, millicpu: number, memoryBytes: number, extra: Partial<WorkerInfo> = {}): WorkerInfo => ({
  id,
  capacity: { millicpu, memoryBytes },
  labels: {},
  draining: false,
  ...extra,
});

let seq = 0;
const task = (id: string, millicpu: number, memoryBytes: number, extra: Partial<TaskRequest> = {}): TaskRequest => ({
  id,
  resources: { millicpu, memoryBytes },
  constraints: {},
  priority: 0,
  seq: ++seq,
  ...extra,
});

function cluster(workers: WorkerInfo[], opts: SchedulerOptions = {}): Scheduler {
  const s = createScheduler(opts);
  for (const w of workers) s.upsertWorker(w);
  return s;
}

const where = (ps: Placement[]): Record<string, string> => Object.fromEntries(ps.map((p) => [p.taskId, p.workerId]));

describe('scheduler core: fit (filter steps in order)', () => {
  const base: WorkerFacts = {
    connected: true,
    draining: false,
    labels: { gpu: 'true', zone: 'a' },
    capacity: { millicpu: 2000, memoryBytes: 4 * GiB },
    used: { millicpu: 1000, memoryBytes: 2 * GiB },
  };
  const needs = (millicpu: number, memoryBytes: number, constraints: Record<string, string> = {}) => ({
    resources: { millicpu, memoryBytes },
    constraints: constraintList(constraints),
  });
  const cases: Array<[string, Partial<WorkerFacts>, ReturnType<typeof needs>, boolean, string | undefined]> = [
    ['fits exactly the free resources', {}, needs(1000, 2 * GiB), false, undefined],
    ['zero request fits a full worker', { used: { millicpu: 2000, memoryBytes: 4 * GiB } }, needs(0, 0), false, undefined],
    ['one millicpu too many', {}, needs(1001, 1), false, 'insufficient cpu'],
    ['one byte too many', {}, needs(1, 2 * GiB + 1), false, 'insufficient memory'],
    ['cpu is checked before memory', {}, needs(5000, 9 * GiB), false, 'insufficient cpu'],
    ['labels all required', {}, needs(1, 1, { gpu: 'true', zone: 'b' }), false, 'missing label zone=b'],
    ['first missing label in key order', {}, needs(1, 1, { zz: '1', aa: '1' }), false, 'missing label aa=1'],
    ['labels before resources', {}, needs(9000, 1, { disk: 'ssd' }), false, 'missing label disk=ssd'],
    ['excluded before labels', {}, needs(1, 1, { disk: 'ssd' }), true, 'excluded'],
    ['draining before excluded', { draining: true }, needs(1, 1), true, 'draining'],
    ['disconnected first', { connected: false, draining: true }, needs(1, 1), true, 'disconnected'],
    ['prototype keys are not labels', { labels: {} }, needs(1, 1, { toString: 'x' }), false, 'missing label toString=x'],
  ];
  for (const [name, w, t, excluded, want] of cases) {
    it(name, () => expect(firstRejection({ ...base, ...w }, t, excluded)).to.equal(want));
  }

  it('a scheduler places only on workers passing every filter', () => {
    const s = cluster([
      worker('off', 8000, 8 * GiB),
      worker('drain', 8000, 8 * GiB, { draining: true }),
      worker('small', 500, 8 * GiB, { labels: { gpu: 'true' } }),
      worker('nolabel', 8000, 8 * GiB),
      worker('ok', 1000, 1 * GiB, { labels: { gpu: 'true' } }),
    ]);
    s.removeWorker('off');
    s.enqueue(task('t', 1000, 1 * GiB, { constraints: { gpu: 'true' } }));
    expect(s.schedule()).to.deep.equal([{ taskId: 't', workerId: 'ok' }]);
    expect(s.used('ok')).to.deep.equal({ millicpu: 1000, memoryBytes: 1 * GiB });
  });
});

describe('scheduler core: score (binpack vs spread, live load)', () => {
  const cap = { millicpu: 4000, memoryBytes: 4 * GiB };
  const req = { millicpu: 1000, memoryBytes: 1 * GiB };
  const cases: Array<[string, 'binpack' | 'spread', number, number, 'fuller' | 'emptier']> = [
    ['binpack prefers the fuller worker', 'binpack', 2000, 0, 'fuller'],
    ['spread prefers the emptier worker', 'spread', 2000, 0, 'emptier'],
    ['binpack: a worker it fills completely is best', 'binpack', 3000, 1000, 'fuller'],
  ];
  for (const [name, strategy, fullerCpu, emptierCpu, want] of cases) {
    it(name, () => {
      const fuller = scoreFit(strategy, cap, { millicpu: fullerCpu, memoryBytes: fullerCpu * MiB }, req);
      const emptier = scoreFit(strategy, cap, { millicpu: emptierCpu, memoryBytes: emptierCpu * MiB }, req);
      expect(fuller > emptier ? 'fuller' : 'emptier').to.equal(want);
    });
  }
  it('scores stay in [0, 1]', () => {
    for (const strategy of ['binpack', 'spread'] as const) {
      expect(scoreFit(strategy, cap, { millicpu: 0, memoryBytes: 0 }, { millicpu: 0, memoryBytes: 0 })).to.be.within(0, 1);
      expect(scoreFit(strategy, cap, { millicpu: 3000, memoryBytes: 3 * GiB }, req)).to.be.within(0, 1);
    }
  });
  it('live load: load per core and memory pressure, unknown is idle', () => {
    expect(liveLoad(cap, undefined, undefined)).to.equal(0);
    expect(liveLoad(cap, 4, undefined)).to.equal(0.5);
    expect(liveLoad(cap, 8, 0)).to.equal(1);
    expect(liveLoad(cap, 0, 3 * GiB)).to.equal(0.125);
  });

  const placementCases: Array<[string, WorkerInfo[], Array<[string, number, number]>, Partial<TaskRequest>, string]> = [
    ['binpack fills the busier worker', [worker('a', 4000, 4 * GiB), worker('b', 4000, 4 * GiB)], [['x', 2000, 2 * GiB]], {}, 'a'],
    ['spread picks the idle worker', [worker('a', 4000, 4 * GiB), worker('b', 4000, 4 * GiB)], [['x', 2000, 2 * GiB]], { strategy: 'spread' }, 'b'],
    ['binpack picks the tightest fit', [worker('big', 16000, 16 * GiB), worker('small', 1000, 1 * GiB)], [], {}, 'small'],
    ['spread picks the roomiest', [worker('big', 16000, 16 * GiB), worker('small', 1000, 1 * GiB)], [], { strategy: 'spread' }, 'big'],
    [
      'live load breaks a tie',
      [worker('hot', 4000, 4 * GiB, { load1: 4 }), worker('cool', 4000, 4 * GiB, { load1: 0.1 })],
      [],
      {},
      'cool',
    ],
    [
      'memory pressure counts as load',
      [worker('tight', 4000, 4 * GiB, { memoryFreeBytes: 100 * MiB }), worker('roomy', 4000, 4 * GiB, { memoryFreeBytes: 3 * GiB })],
      [],
      { strategy: 'spread' },
      'roomy',
    ],
  ];
  for (const [name, workers, running, extra, want] of placementCases) {
    it(name, () => {
      const s = cluster(workers);
      for (const [wid, cpu, mem] of running) s.allocate(`run-${wid}`, wid, { millicpu: cpu, memoryBytes: mem });
      s.enqueue(task('t', 1000, 1 * GiB, extra));
      expect(s.schedule()[0]?.workerId).to.equal(want);
    });
  }
  it('defaultStrategy applies to tasks that name none', () => {
    const s = cluster([worker('a', 4000, 4 * GiB), worker('b', 4000, 4 * GiB)], { defaultStrategy: 'spread' });
    for (let i = 0; i < 4; i++) s.enqueue(task(`t${i}`, 1000, 1 * GiB));
    const counts = s.schedule().reduce<Record<string, number>>((m, p) => ({ ...m, [p.workerId]: (m[p.workerId] ?? 0) + 1 }), {});
    expect(counts).to.deep.equal({ a: 2, b: 2 });
  });
});

describe('scheduler core: order (priority, then submission)', () => {
  it('precedes: higher priority first, then lower seq, then id', () => {
    const cases: Array<[[number, number, string], [number, number, string], boolean]> = [
      [[5, 9, 'a'], [1, 1, 'b'], true],
      [[1, 1, 'a'], [5, 9, 'b'], false],
      [[1, 1, 'b'], [1, 2, 'a'], true],
      [[1, 2, 'a'], [1, 1, 'b'], false],
      [[1, 1, 'a'], [1, 1, 'b'], true],
      [[-1, 1, 'a'], [-2, 0, 'b'], true],
    ];
    for (const [[pa, sa, ia], [pb, sb, ib], want] of cases) {
      expect(precedes({ id: ia, priority: pa, seq: sa }, { id: ib, priority: pb, seq: sb })).to.equal(want);
    }
  });

  it('placements come out in queue order across shapes and priorities', () => {
    const s = cluster([worker('w', 100_000, 100 * GiB)]);
    s.enqueue(task('low-1', 100, MiB, { priority: 0 }));
    s.enqueue(task('high-1', 300, MiB, { priority: 10 }));
    s.enqueue(task('mid-1', 200, MiB, { priority: 5, constraints: {} }));
    s.enqueue(task('high-2', 100, MiB, { priority: 10 }));
    s.enqueue(task('low-2', 500, 2 * MiB, { priority: 0 }));
    s.enqueue(task('mid-2', 200, MiB, { priority: 5 }));
    expect(s.schedule().map((p) => p.taskId)).to.deep.equal(['high-1', 'high-2', 'mid-1', 'mid-2', 'low-1', 'low-2']);
  });

  it('capacity goes to the queue front when it is short', () => {
    const s = cluster([worker('w', 2000, 2 * GiB)]);
    s.enqueue(task('first', 1000, GiB));
    s.enqueue(task('urgent', 1000, GiB, { priority: 1 }));
    s.enqueue(task('third', 1000, GiB));
    expect(s.schedule().map((p) => p.taskId)).to.deep.equal(['urgent', 'first']);
    expect(s.queued()).to.equal(1);
  });

  it('limit bounds one pass; the next pass continues', () => {
    const s = cluster([worker('w', 10_000, 10 * GiB)]);
    for (let i = 0; i < 5; i++) s.enqueue(task(`t${i}`, 1000, GiB));
    expect(s.schedule(2).map((p) => p.taskId)).to.deep.equal(['t0', 't1']);
    expect(s.schedule().map((p) => p.taskId)).to.deep.equal(['t2', 't3', 't4']);
    expect(s.schedule()).to.deep.equal([]);
  });

  it('re-enqueueing a queued task replaces its request; remove drops it', () => {
    const s = cluster([worker('w', 1000, GiB)]);
    s.enqueue(task('a', 5000, GiB));
    s.enqueue(task('a', 500, GiB));
    s.enqueue(task('b', 100, MiB));
    s.remove('b');
    expect(s.queued()).to.equal(1);
    expect(s.schedule()).to.deep.equal([{ taskId: 'a', workerId: 'w' }]);
  });
});

describe('scheduler core: backfill and reservation', () => {
  it('small tasks go around a big head that does not fit, but not onto its reserved worker', () => {
    const s = cluster([worker('big', 4000, 8 * GiB), worker('small', 1000, 2 * GiB)]);
    s.allocate('running', 'big', { millicpu: 3000, memoryBytes: 6 * GiB });
    s.enqueue(task('head', 2000, 4 * GiB, { priority: 5 }));
    s.enqueue(task('s1', 1000, 1 * GiB));
    s.enqueue(task('s2', 1000, 1 * GiB));
    expect(s.schedule()).to.deep.equal([{ taskId: 's1', workerId: 'small' }]);
    expect(s.explain('head')).to.equal('0/2 workers fit: 2 insufficient cpu; worker big is reserved for it');
    expect(s.explain('s2')).to.equal('0/2 workers fit: 1 insufficient cpu, 1 reserved for an earlier task');
    s.release('running');
    expect(where(s.schedule())).to.deep.equal({ head: 'big', s2: 'big' });
  });

  it('without a reservation (headReserve 0) backfill takes what frees up', () => {
    const s = cluster([worker('big', 4000, 8 * GiB)], { headReserve: 0 });
    s.allocate('running', 'big', { millicpu: 3000, memoryBytes: 6 * GiB });
    s.enqueue(task('head', 2000, 4 * GiB, { priority: 5 }));
    s.enqueue(task('s1', 1000, 1 * GiB));
    expect(where(s.schedule())).to.deep.equal({ s1: 'big' });
  });

  // A stream of small tasks keeps arriving and finishing; the big head must still run.
  for (const [name, headReserve, wantHeadPlaced] of [
    ['starvation: the reserved head is placed once its worker drains', 1, true],
    ['starvation: greedy backfill (headReserve 0) starves the head', 0, false],
  ] as const) {
    it(name, () => {
      const s = cluster([worker('a', 4000, 4 * GiB), worker('b', 4000, 4 * GiB)], { headReserve });
      const running: string[] = [];
      let n = 0;
      const submitSmall = () => s.enqueue(task(`small-${n++}`, 1000, 1 * GiB));
      for (let i = 0; i < 8; i++) submitSmall();
      for (const p of s.schedule()) running.push(p.taskId);
      expect(running).to.have.length(8);
      s.enqueue(task('head', 4000, 4 * GiB, { priority: 1 }));
      let headPlaced = false;
      for (let round = 0; round < 50 && !headPlaced; round++) {
        // The oldest small task finishes, two more arrive.
        s.release(running.shift() as string);
        submitSmall();
        submitSmall();
        for (const p of s.schedule()) {
          if (p.taskId === 'head') headPlaced = true;
          else running.push(p.taskId);
        }
      }
      expect(headPlaced).to.equal(wantHeadPlaced);
    });
  }

  it('a higher-priority task may use a worker reserved for a lower one', () => {
    const s = cluster([worker('w', 4000, 4 * GiB)]);
    s.allocate('running', 'w', { millicpu: 2000, memoryBytes: 2 * GiB });
    s.enqueue(task('head', 4000, 4 * GiB, { priority: 1 }));
    s.enqueue(task('later', 1000, 1 * GiB, { priority: 0 }));
    expect(s.schedule()).to.deep.equal([]);
    s.enqueue(task('urgent', 1000, 1 * GiB, { priority: 9 }));
    expect(s.schedule()).to.deep.equal([{ taskId: 'urgent', workerId: 'w' }]);
  });

  it('an unplaceable head reserves nothing and blocks nobody', () => {
    const s = cluster([worker('w', 4000, 4 * GiB)]);
    s.allocate('running', 'w', { millicpu: 1000, memoryBytes: 1 * GiB });
    s.enqueue(task('huge', 64_000, 4 * GiB, { priority: 9 }));
    s.enqueue(task('gpu', 100, MiB, { priority: 9, constraints: { gpu: 'true' } }));
    s.enqueue(task('ok', 1000, 1 * GiB));
    expect(s.schedule()).to.deep.equal([{ taskId: 'ok', workerId: 'w' }]);
    expect(s.unplaceable('huge')).to.equal('no-fit');
    expect(s.unplaceable('gpu')).to.equal('no-fit');
    expect(s.unplaceable('ok')).to.equal(undefined);
    expect(s.unplaceable('nope')).to.equal(undefined);
    expect(s.explainDetail('huge')?.reservedWorkerId).to.equal(undefined);
  });

  it('blocked shapes are skipped whole: one pass looks past many queued tasks of a shape', () => {
    const s = cluster([worker('w', 4000, 4 * GiB)], { backfillDepth: 3 });
    for (let i = 0; i < 1000; i++) s.enqueue(task(`big-${i}`, 8000, GiB, { priority: 1 }));
    for (let i = 0; i < 1000; i++) s.enqueue(task(`gpu-${i}`, 100, MiB, { priority: 1, constraints: { gpu: 'true' } }));
    s.enqueue(task('small', 1000, GiB));
    expect(s.schedule()).to.deep.equal([{ taskId: 'small', workerId: 'w' }]);
  });

  it('backfillDepth bounds a pass: shapes past the limit wait for the next pass', () => {
    const s = cluster([worker('w', 4000, 4 * GiB)], { backfillDepth: 1 });
    s.enqueue(task('too-big', 8000, GiB, { priority: 1 }));
    s.enqueue(task('small', 1000, GiB));
    expect(s.schedule()).to.deep.equal([]);
    s.remove('too-big');
    expect(s.schedule()).to.deep.equal([{ taskId: 'small', workerId: 'w' }]);
  });

  it('a reservation moves when its worker drains or leaves', () => {
    const s = cluster([worker('a', 4000, 4 * GiB), worker('b', 8000, 8 * GiB)]);
    s.allocate('ra', 'a', { millicpu: 3000, memoryBytes: 3 * GiB });
    s.allocate('rb', 'b', { millicpu: 7000, memoryBytes: 7 * GiB });
    s.enqueue(task('head', 4000, 4 * GiB, { priority: 1 }));
    s.schedule();
    expect(s.explainDetail('head')?.reservedWorkerId).to.equal('a');
    s.setDraining('a', true);
    expect(s.explainDetail('head')?.reservedWorkerId).to.equal(undefined);
    s.schedule();
    expect(s.explainDetail('head')?.reservedWorkerId).to.equal('b');
    expect(s.unplaceable('head')).to.equal(false);
    s.removeWorker('b');
    s.schedule();
    expect(s.unplaceable('head')).to.equal('no-fit');
  });
});

describe('scheduler core: exclusion', () => {
  it('an excluded worker is never offered the task again', () => {
    const s = cluster([worker('a', 4000, 4 * GiB), worker('b', 1000, 1 * GiB)]);
    s.enqueue(task('t', 1000, GiB));
    expect(s.schedule()).to.deep.equal([{ taskId: 't', workerId: 'b' }]);
    // b refuses: the manager excludes, releases and queues the task again.
    s.exclude('t', 'b');
    s.release('t');
    s.enqueue(task('t', 1000, GiB));
    expect(s.schedule()).to.deep.equal([{ taskId: 't', workerId: 'a' }]);
    s.exclude('t', 'a');
    s.release('t');
    s.enqueue(task('t', 1000, GiB));
    expect(s.schedule()).to.deep.equal([]);
    expect(s.explain('t')).to.equal('0/2 workers fit: 2 excluded; every worker that could run it refused it');
    expect(s.unplaceable('t')).to.equal('excluded');
  });

  it('excluding a queued task from one worker leaves its shape-mates alone', () => {
    const s = cluster([worker('a', 1000, GiB)]);
    s.enqueue(task('x', 1000, GiB));
    s.enqueue(task('y', 1000, GiB));
    s.exclude('x', 'a');
    expect(s.schedule()).to.deep.equal([{ taskId: 'y', workerId: 'a' }]);
    expect(s.explain('x')).to.match(/^0\/1 workers fit: 1 excluded/);
  });

  it('remove forgets exclusions; release keeps them', () => {
    const s = cluster([worker('a', 1000, GiB)]);
    s.exclude('t', 'a');
    s.enqueue(task('t', 1000, GiB));
    expect(s.schedule()).to.deep.equal([]);
    s.remove('t');
    s.enqueue(task('t', 1000, GiB));
    expect(s.schedule()).to.deep.equal([{ taskId: 't', workerId: 'a' }]);
  });
});

describe('scheduler core: explain', () => {
  const cases: Array<[string, WorkerInfo[], Partial<TaskRequest>, string | undefined]> = [
    [
      'the issue example',
      [worker('a', 4000, 1 * GiB), worker('b', 4000, 1 * GiB, { labels: { gpu: 'true' } }), worker('c', 4000, 8 * GiB)],
      { resources: { millicpu: 1000, memoryBytes: 2 * GiB }, constraints: { gpu: 'true' } },
      '0/3 workers fit: 2 missing label gpu=true, 1 insufficient memory; no connected worker could ever fit it',
    ],
    [
      'counts by the first failing filter, most common first',
      [
        worker('a', 500, 1 * GiB, { labels: { zone: 'b' } }),
        worker('b', 4000, 1 * GiB, { labels: { zone: 'b' } }),
        worker('c', 4000, 1 * GiB, { labels: { zone: 'b' } }),
        worker('d', 4000, 8 * GiB, { draining: true }),
        worker('e', 4000, 8 * GiB),
      ],
      { resources: { millicpu: 1000, memoryBytes: 2 * GiB }, constraints: { zone: 'b' } },
      '0/5 workers fit: 2 insufficient memory, 1 draining, 1 missing label zone=b, 1 insufficient cpu; no connected worker could ever fit it',
    ],
    ['placeable: undefined', [worker('a', 4000, 8 * GiB)], { resources: { millicpu: 1000, memoryBytes: GiB } }, undefined],
    [
      'no workers at all',
      [],
      { resources: { millicpu: 1000, memoryBytes: GiB } },
      '0/0 workers fit; no connected worker could ever fit it',
    ],
    [
      'too big for every worker',
      [worker('a', 4000, 1 * GiB), worker('b', 8000, 1 * GiB)],
      { resources: { millicpu: 1000, memoryBytes: 2 * GiB } },
      '0/2 workers fit: 2 insufficient memory; no connected worker could ever fit it',
    ],
  ];
  for (const [name, workers, t, want] of cases) {
    it(name, () => {
      const s = cluster(workers);
      s.enqueue({ ...task('t', 0, 0), ...t });
      s.schedule();
      expect(s.explain('t')).to.equal(want);
    });
  }

  it('the issue example, as worded there (busy, not unplaceable)', () => {
    const s = cluster([worker('a', 4000, 4 * GiB), worker('b', 4000, 4 * GiB), worker('c', 4000, 4 * GiB)]);
    s.allocate('r1', 'a', { millicpu: 0, memoryBytes: 3 * GiB });
    s.allocate('r2', 'b', { millicpu: 0, memoryBytes: 3 * GiB });
    s.enqueue(task('t', 1000, 2 * GiB, { constraints: { gpu: 'true' } }));
    s.upsertWorker(worker('a', 4000, 4 * GiB, { labels: { gpu: 'true' } }));
    s.upsertWorker(worker('b', 4000, 4 * GiB, { labels: { gpu: 'true' } }));
    expect(s.schedule()).to.deep.equal([]);
    expect(s.explain('t')).to.equal('0/3 workers fit: 2 insufficient memory, 1 missing label gpu=true; worker a is reserved for it');
  });

  it('disconnected workers count, under their own reason', () => {
    const s = cluster([worker('a', 4000, 4 * GiB), worker('b', 4000, 4 * GiB)]);
    s.removeWorker('a');
    s.enqueue(task('t', 8000, GiB));
    expect(s.explain('t')).to.equal(
      '0/2 workers fit: 1 disconnected, 1 insufficient cpu; no connected worker could ever fit it',
    );
    expect(s.explain('not-queued')).to.equal(undefined);
  });

  it('formatPlacementFailure renders a summary without reasons', () => {
    expect(formatPlacementFailure({ taskId: 't', workers: 2, fit: 2, rejections: [], unplaceable: false })).to.equal('2/2 workers fit');
  });
});

describe('scheduler core: workers and allocations', () => {
  it('removeWorker stops placements but keeps allocations until release', () => {
    const s = cluster([worker('a', 2000, 2 * GiB)]);
    s.enqueue(task('t1', 1000, GiB));
    s.schedule();
    s.removeWorker('a');
    s.enqueue(task('t2', 1000, GiB));
    expect(s.schedule()).to.deep.equal([]);
    expect(s.used('a')).to.deep.equal({ millicpu: 1000, memoryBytes: GiB });
    s.upsertWorker(worker('a', 2000, 2 * GiB));
    expect(s.schedule()).to.deep.equal([{ taskId: 't2', workerId: 'a' }]);
    expect(s.schedule()).to.deep.equal([]);
    s.release('t1');
    s.release('t1');
    expect(s.used('a')).to.deep.equal({ millicpu: 1000, memoryBytes: GiB });
  });

  it('allocate records a recovered task, before or after its worker connects', () => {
    const s = createScheduler();
    s.enqueue(task('t', 1000, GiB));
    s.allocate('t', 'late', { millicpu: 1500, memoryBytes: GiB });
    expect(s.queued()).to.equal(0);
    expect(s.allocation('t')).to.deep.equal({ workerId: 'late', resources: { millicpu: 1500, memoryBytes: GiB } });
    s.upsertWorker(worker('late', 2000, 2 * GiB));
    s.enqueue(task('u', 1000, GiB));
    expect(s.schedule()).to.deep.equal([]);
    expect(s.explain('u')).to.equal('0/1 workers fit: 1 insufficient cpu; worker late is reserved for it');
    s.allocate('t', 'late', { millicpu: 500, memoryBytes: GiB });
    expect(s.schedule()).to.deep.equal([{ taskId: 'u', workerId: 'late' }]);
  });

  it('draining stops placements; undraining resumes them', () => {
    const s = cluster([worker('a', 2000, 2 * GiB)]);
    s.setDraining('a', true);
    s.enqueue(task('t', 1000, GiB));
    expect(s.schedule()).to.deep.equal([]);
    expect(s.explain('t')).to.match(/^0\/1 workers fit: 1 draining/);
    s.setDraining('a', false);
    expect(s.schedule()).to.deep.equal([{ taskId: 't', workerId: 'a' }]);
  });

  it('label and capacity updates re-index the worker', () => {
    const s = cluster([worker('a', 1000, GiB)]);
    s.enqueue(task('gpu', 1000, GiB, { constraints: { gpu: 'true' } }));
    s.enqueue(task('big', 4000, GiB));
    expect(s.schedule()).to.deep.equal([]);
    s.upsertWorker(worker('a', 1000, GiB, { labels: { gpu: 'true' } }));
    expect(s.schedule()).to.deep.equal([{ taskId: 'gpu', workerId: 'a' }]);
    s.release('gpu');
    s.upsertWorker(worker('a', 4000, GiB, { labels: {} }));
    expect(s.schedule()).to.deep.equal([{ taskId: 'big', workerId: 'a' }]);
  });

  it('many distinct constraint sets: label pools come and go without losing workers', () => {
    const hosts = Array.from({ length: 100 }, (_, i) => worker(`h${i}`, 1000, GiB, { labels: { hostname: `h${i}`, zone: i % 2 ? 'a' : 'b' } }));
    const s = cluster(hosts);
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 100; i++) s.enqueue(task(`pin-${round}-${i}`, 1000, GiB, { constraints: { hostname: `h${i}` } }));
      const placed = s.schedule();
      expect(placed).to.have.length(100);
      for (const p of placed) {
        expect(p.workerId).to.equal(`h${p.taskId.split('-')[2]}`);
        s.release(p.taskId);
      }
    }
    // A new pool past the limit evicts the idle ones; evicted pools are rebuilt on demand.
    for (let i = 0; i < 100; i++) s.enqueue(task(`zone-${i}`, 1000, GiB, { constraints: { zone: 'a' } }));
    const zoned = s.schedule();
    expect(zoned).to.have.length(50);
    for (const p of zoned) s.release(p.taskId);
    for (let i = 50; i < 100; i++) s.remove(`zone-${i}`);
    s.enqueue(task('pin-again-7', 1000, GiB, { constraints: { hostname: 'h7' } }));
    s.enqueue(task('pin-again-8', 1000, GiB, { constraints: { hostname: 'h8' } }));
    expect(where(s.schedule())).to.deep.equal({ 'pin-again-7': 'h7', 'pin-again-8': 'h8' });
  });

  it('forgetWorker drops the worker and its allocations', () => {
    const s = cluster([worker('a', 1000, GiB)]);
    s.allocate('t', 'a', { millicpu: 1000, memoryBytes: GiB });
    s.forgetWorker('a');
    expect(s.used('a')).to.equal(undefined);
    expect(s.allocation('t')).to.equal(undefined);
  });

  it('rejects malformed input with SchedulerInputError', () => {
    const s = createScheduler();
    expect(() => s.enqueue(task('t', -1, 0))).to.throw(SchedulerInputError);
    expect(() => s.enqueue(task('', 1, 0))).to.throw(SchedulerInputError);
    expect(() => s.upsertWorker(worker('w', NaN, 0))).to.throw(SchedulerInputError);
    s.allocate('t', 'w', { millicpu: 1, memoryBytes: 1 });
    expect(() => s.enqueue(task('t', 1, 1))).to.throw(SchedulerInputError, /release it/);
  });
});

describe('scheduler core: FitIndex', () => {
  it('ascending and descending walks match a sorted brute force', () => {
    const rnd = seededRandom(7);
    const index = new FitIndex<number>(rnd);
    const nodes = Array.from({ length: 300 }, (_, i) => index.node(i, i, Math.floor(rnd() * 20), Math.floor(rnd() * 20)));
    for (const n of nodes) index.insert(n);
    for (const n of nodes.slice(0, 100)) index.rekey(n, Math.floor(rnd() * 20), Math.floor(rnd() * 20));
    for (const n of nodes.slice(100, 150)) index.remove(n);
    const live = nodes.filter((_, i) => i < 100 || i >= 150);
    expect(index.size).to.equal(live.length);
    const sorted = [...live].sort((a, b) => a.key - b.key || a.ord - b.ord);
    for (let mem = 0; mem < 21; mem += 4) {
      for (let cpu = 0; cpu < 21; cpu += 4) {
        const want = sorted.filter((n) => n.key >= mem && n.cpu >= cpu).map((n) => n.item);
        const up: number[] = [];
        for (let n = index.ascending(mem, cpu); n !== null; n = index.ascending(mem, cpu, n)) up.push(n.item);
        const down: number[] = [];
        for (let n = index.descending(mem, cpu); n !== null; n = index.descending(mem, cpu, n)) down.push(n.item);
        expect(up).to.deep.equal(want);
        expect(down).to.deep.equal([...want].reverse());
      }
    }
  });
});
