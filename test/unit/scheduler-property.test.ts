import { expect } from 'chai';
import fc from 'fast-check';
import { createScheduler, type Resources, type TaskRequest, type WorkerInfo } from '../../management-node/src/scheduler/scheduler.js';

// A model of what the scheduler was told, checked against every answer it gives.
interface ModelWorker {
  info: WorkerInfo;
  connected: boolean;
}

const labelsArb = fc.record(
  { gpu: fc.constantFrom('true', 'false'), zone: fc.constantFrom('a', 'b') },
  { requiredKeys: [] },
) as fc.Arbitrary<Record<string, string>>;
const capacityArb = fc.record({ millicpu: fc.integer({ min: 0, max: 8 }).map((n) => n * 500), memoryBytes: fc.integer({ min: 0, max: 16 }) });
const requestArb = fc.record({ millicpu: fc.integer({ min: 0, max: 6 }).map((n) => n * 250), memoryBytes: fc.integer({ min: 0, max: 8 }) });
const W = 6;
const T = 16;

const opArb = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('enqueue' as const), task: fc.nat(T - 1) }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('schedule' as const), limit: fc.option(fc.integer({ min: 0, max: 4 }), { nil: undefined }) }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('release' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('exclude' as const), task: fc.nat(T - 1), worker: fc.nat(W - 1) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('drain' as const), worker: fc.nat(W - 1), draining: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('disconnect' as const), worker: fc.nat(W - 1) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('upsert' as const), worker: fc.nat(W - 1), capacity: capacityArb, labels: labelsArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('remove' as const), task: fc.nat(T - 1) }) },
);

const fits = (free: Resources, r: Resources) => free.millicpu >= r.millicpu && free.memoryBytes >= r.memoryBytes;
const carries = (labels: Record<string, string>, constraints: Record<string, string>) =>
  Object.entries(constraints).every(([k, v]) => labels[k] === v);
/** The queue order, from the model's own fields: higher priority first, then earlier seq, then id. */
const goesBefore = (a: TaskRequest, b: TaskRequest) =>
  a.priority !== b.priority ? a.priority > b.priority : a.seq !== b.seq ? a.seq < b.seq : a.id < b.id;

describe('scheduler core: properties', () => {
  it('never over-commits a worker; every placement respects state, constraints and exclusions; nothing placeable is left behind', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ capacity: capacityArb, labels: labelsArb }), { minLength: 0, maxLength: W }),
        fc.array(
          fc.record({
            resources: requestArb,
            constraints: labelsArb,
            priority: fc.integer({ min: 0, max: 2 }),
            strategy: fc.constantFrom('binpack' as const, 'spread' as const),
          }),
          { minLength: T, maxLength: T },
        ),
        fc.array(opArb, { maxLength: 80 }),
        fc.record({ headReserve: fc.integer({ min: 0, max: 2 }), candidates: fc.integer({ min: 1, max: 4 }) }),
        (initialWorkers, taskSpecs, ops, opts) => {
          const s = createScheduler({ ...opts, backfillDepth: Infinity });
          const workers = new Map<string, ModelWorker>();
          const allocs = new Map<string, { worker: string; r: Resources }>();
          const queued = new Map<string, TaskRequest>();
          const excluded = new Map<string, Set<string>>();
          let seq = 0;

          const usedOf = (id: string): Resources => {
            const u = { millicpu: 0, memoryBytes: 0 };
            for (const a of allocs.values()) {
              if (a.worker !== id) continue;
              u.millicpu += a.r.millicpu;
              u.memoryBytes += a.r.memoryBytes;
            }
            return u;
          };
          const freeOf = (w: ModelWorker): Resources => {
            const u = usedOf(w.info.id);
            return { millicpu: w.info.capacity.millicpu - u.millicpu, memoryBytes: w.info.capacity.memoryBytes - u.memoryBytes };
          };
          const upsert = (info: WorkerInfo) => {
            workers.set(info.id, { info, connected: true });
            s.upsertWorker(info);
          };
          initialWorkers.forEach((w, i) => upsert({ id: `w${i}`, capacity: w.capacity, labels: w.labels, draining: false }));

          for (const op of ops) {
            switch (op.op) {
              case 'enqueue': {
                const id = `t${op.task}`;
                if (allocs.has(id)) break;
                const spec = taskSpecs[op.task];
                if (spec === undefined) break;
                const t: TaskRequest = { id, ...spec, seq: ++seq };
                queued.set(id, t);
                s.enqueue(t);
                break;
              }
              case 'schedule': {
                const placements = s.schedule(op.limit);
                if (op.limit !== undefined) expect(placements.length).to.be.at.most(op.limit);
                for (const p of placements) {
                  const t = queued.get(p.taskId);
                  const w = workers.get(p.workerId);
                  expect(t, `${p.taskId} was queued`).to.not.equal(undefined);
                  expect(w, `${p.workerId} is known`).to.not.equal(undefined);
                  if (t === undefined || w === undefined) return;
                  expect(w.connected && !w.info.draining, 'connected, not draining').to.equal(true);
                  expect(carries(w.info.labels, t.constraints), 'labels').to.equal(true);
                  expect(excluded.get(t.id)?.has(w.info.id) ?? false, 'not excluded').to.equal(false);
                  expect(fits(freeOf(w), t.resources), 'fits free resources').to.equal(true);
                  queued.delete(t.id);
                  allocs.set(t.id, { worker: w.info.id, r: t.resources });
                }
                if (op.limit === undefined) {
                  // A full pass leaves only tasks that fit nowhere, judged by the model: on every
                  // worker open to the task where it fits the free resources, another task that
                  // goes before it holds a reservation. Which task reserved which worker is the
                  // one fact taken from the scheduler, and the model checks each is legitimate.
                  const holderOf = new Map<string, TaskRequest>();
                  for (const h of queued.values()) {
                    const reserved = s.explainDetail(h.id)?.reservedWorkerId;
                    if (reserved === undefined) continue;
                    const w = workers.get(reserved);
                    expect(w, `${h.id} reserves a known worker`).to.not.equal(undefined);
                    if (w === undefined) return;
                    expect(holderOf.has(reserved), `${reserved} reserved once`).to.equal(false);
                    expect(w.connected && !w.info.draining, `${h.id} reserves ${reserved}: connected, not draining`).to.equal(true);
                    expect(carries(w.info.labels, h.constraints ?? {}), `${h.id} reserves ${reserved}: labels`).to.equal(true);
                    expect(fits(w.info.capacity, h.resources), `${h.id} reserves ${reserved}: it could hold it`).to.equal(true);
                    expect(excluded.get(h.id)?.has(reserved) ?? false, `${h.id} reserves ${reserved}: not excluded`).to.equal(false);
                    holderOf.set(reserved, h);
                  }
                  for (const t of queued.values()) {
                    for (const w of workers.values()) {
                      const open = w.connected && !w.info.draining && carries(w.info.labels, t.constraints ?? {}) && !(excluded.get(t.id)?.has(w.info.id) ?? false);
                      if (!open || !fits(freeOf(w), t.resources)) continue;
                      const holder = holderOf.get(w.info.id);
                      expect(
                        holder !== undefined && holder.id !== t.id && goesBefore(holder, t),
                        `${t.id} left behind though it fits ${w.info.id}${holder ? ` (reserved by ${holder.id})` : ''}`,
                      ).to.equal(true);
                    }
                  }
                }
                break;
              }
              case 'release': {
                const ids = [...allocs.keys()];
                const id = ids[op.pick % Math.max(1, ids.length)];
                if (id === undefined) break;
                allocs.delete(id);
                s.release(id);
                break;
              }
              case 'exclude': {
                const id = `t${op.task}`;
                const set = excluded.get(id) ?? new Set<string>();
                set.add(`w${op.worker}`);
                excluded.set(id, set);
                s.exclude(id, `w${op.worker}`);
                break;
              }
              case 'drain': {
                const w = workers.get(`w${op.worker}`);
                if (w !== undefined) w.info = { ...w.info, draining: op.draining };
                s.setDraining(`w${op.worker}`, op.draining);
                break;
              }
              case 'disconnect': {
                const w = workers.get(`w${op.worker}`);
                if (w !== undefined) w.connected = false;
                s.removeWorker(`w${op.worker}`);
                break;
              }
              case 'upsert': {
                const id = `w${op.worker}`;
                // Capacity never drops below what is allocated: then "used ≤ capacity" must always hold.
                const used = usedOf(id);
                const capacity = {
                  millicpu: Math.max(op.capacity.millicpu, used.millicpu),
                  memoryBytes: Math.max(op.capacity.memoryBytes, used.memoryBytes),
                };
                upsert({ id, capacity, labels: op.labels, draining: workers.get(id)?.info.draining ?? false });
                break;
              }
              case 'remove': {
                const id = `t${op.task}`;
                queued.delete(id);
                allocs.delete(id);
                excluded.delete(id);
                s.remove(id);
                break;
              }
            }

            expect(s.queued()).to.equal(queued.size);
            for (const w of workers.values()) {
              const used = s.used(w.info.id);
              expect(used).to.deep.equal(usedOf(w.info.id));
              expect(fits(w.info.capacity, used as Resources), `${w.info.id} over-committed`).to.equal(true);
            }
            for (const t of queued.values()) {
              const capable = [...workers.values()].filter(
                (w) => w.connected && !w.info.draining && carries(w.info.labels, t.constraints) && fits(w.info.capacity, t.resources),
              );
              const open = capable.filter((w) => !(excluded.get(t.id)?.has(w.info.id) ?? false));
              const want = open.length > 0 ? false : capable.length > 0 ? 'excluded' : 'no-fit';
              expect(s.unplaceable(t.id), `${t.id} unplaceable`).to.equal(want);
            }
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  it('the same calls give the same placements (deterministic)', () => {
    fc.assert(
      fc.property(
        fc.array(capacityArb, { minLength: 1, maxLength: 8 }),
        fc.array(requestArb, { minLength: 1, maxLength: 40 }),
        (caps, reqs) => {
          const run = () => {
            const s = createScheduler();
            caps.forEach((capacity, i) => s.upsertWorker({ id: `w${i}`, capacity, labels: {}, draining: false }));
            reqs.forEach((resources, i) => s.enqueue({ id: `t${i}`, resources, constraints: {}, priority: i % 3, seq: i }));
            return s.schedule();
          };
          expect(run()).to.deep.equal(run());
        },
      ),
      { numRuns: 100 },
    );
  });
});
