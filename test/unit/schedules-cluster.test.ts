// Schedules on the cluster, with a fake wall clock and a real embedded store: a slot's
// task is stored with its key and slot before the record moves on; overlap policies;
// missed slots and the one catch-up after a restart; a crash between the task and the
// record makes no second task.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { pino } from 'pino';
import { ScheduleSchema, TaskState, type Schedule, type Task } from '../../proto/gen/schedapi/v1/types_pb.js';
import { Cluster } from '../../management-node/src/cluster.js';
import { createEmbeddedStore } from '../../management-node/src/store/embedded-store.js';
import { createGroupCommitter } from '../../management-node/src/store/group-commit.js';
import { decodeSchedule, decodeTask, encodeSchedule, SCHEDULES, scheduleKey, TASKS } from '../../management-node/src/store/records.js';
import type { Store } from '../../management-node/src/store/store.js';
import { until } from '../support/until.js';

const log = pino({ level: 'silent' });
const MIN = 60_000;
/** 2026-01-01T00:00:30Z: half a minute before a `* * * * *` slot. */
const T0 = Date.parse('2026-01-01T00:00:30Z');
const slot = (n: number) => T0 + 30_000 + (n - 1) * MIN; // the n-th minute slot after T0

describe('schedules: on the cluster', () => {
  let dir: string;
  let store: Store;
  let now: number;
  let cluster: Cluster;
  const make = () => new Cluster(createGroupCommitter(store, log), { pingIntervalMs: 1000, missedPings: 3, ackTimeoutMs: 500, recoveryGraceMs: 0, now: () => now }, log);
  const storedTasks = async (): Promise<Task[]> => (await store.range(TASKS)).map((kv) => decodeTask(kv.value));
  const storedSchedule = async (name: string): Promise<Schedule> => decodeSchedule((await store.get(scheduleKey(name)))!);
  const outcomes = (s: Schedule) => s.runs.map((r) => [Number(r.slotUnixMs), r.outcome, r.taskId !== '']);
  const schedule = (more: { overlap?: string; startingDeadlineMs?: number; history?: number } = {}) =>
    create(ScheduleSchema, { name: 'every-minute', cron: '* * * * *', spec: { argv: ['true'] }, ...more });
  /** Moves the clock to t and ticks (as the manager's interval does) until the stored record has handled the slot. */
  const fireAt = async (t: number, name = 'every-minute') => {
    now = t;
    await until(`the record of ${name} handled ${new Date(t).toISOString()}`, async () => {
      cluster.tick();
      return Number((await storedSchedule(name)).lastSlotUnixMs) >= t - (t % MIN);
    });
  };
  /** A restart: a new cluster loads what the store holds, at time t. */
  const restart = async (t: number) => {
    now = t;
    cluster = make();
    cluster.load(await storedTasks(), []);
    cluster.schedules.load((await store.range(SCHEDULES)).map((kv) => decodeSchedule(kv.value)));
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sched-schedules-'));
    store = createEmbeddedStore(dir);
    now = T0;
    cluster = make();
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('each slot stores one task with the schedule, its slot and the key schedule:<name>:<slot>, then the record', async () => {
    const created = await cluster.schedules.create(schedule({ overlap: 'allow' }));
    expect(Number(created.nextSlotUnixMs)).to.equal(slot(1));
    now = slot(1) - 1;
    cluster.tick();
    await fireAt(slot(1) + 250);
    await fireAt(slot(2) + 10);
    const tasks = (await storedTasks()).sort((a, b) => Number(a.scheduledForUnixMs - b.scheduledForUnixMs));
    expect(tasks.map((t) => [t.schedule, Number(t.scheduledForUnixMs), t.idempotencyKey])).to.deep.equal([
      ['every-minute', slot(1), `schedule:every-minute:${slot(1)}`],
      ['every-minute', slot(2), `schedule:every-minute:${slot(2)}`],
    ]);
    const s = await storedSchedule('every-minute');
    expect(s.runs.map((r) => r.taskId)).to.deep.equal([tasks[1]!.id, tasks[0]!.id]);
    expect(outcomes(s)).to.deep.equal([
      [slot(2), 'ran', true],
      [slot(1), 'ran', true],
    ]);
    expect(Number(s.nextSlotUnixMs)).to.equal(slot(3));
  });

  it('overlap skip: a slot due while the previous run has not ended is recorded skipped, and makes no task', async () => {
    await cluster.schedules.create(schedule());
    await fireAt(slot(1));
    await fireAt(slot(2));
    expect(await storedTasks()).to.have.length(1); // no worker: the first run is still pending
    expect(outcomes(await storedSchedule('every-minute'))).to.deep.equal([
      [slot(2), 'skipped', false],
      [slot(1), 'ran', true],
    ]);
  });

  it('overlap replace: the previous run is cancelled, then the new one submitted', async () => {
    await cluster.schedules.create(schedule({ overlap: 'replace' }));
    await fireAt(slot(1));
    await fireAt(slot(2));
    const tasks = (await storedTasks()).sort((a, b) => Number(a.scheduledForUnixMs - b.scheduledForUnixMs));
    expect(tasks.map((t) => [TaskState[t.state], t.deadReason])).to.deep.equal([
      ['DEAD', 'cancelled'],
      ['PENDING', ''],
    ]);
  });

  it('overlap allow: runs go on side by side', async () => {
    await cluster.schedules.create(schedule({ overlap: 'allow' }));
    await fireAt(slot(1));
    await fireAt(slot(2));
    expect((await storedTasks()).map((t) => TaskState[t.state])).to.deep.equal(['PENDING', 'PENDING']);
  });

  it('after a restart, slots missed while no manager led are recorded missed (no starting deadline)', async () => {
    await cluster.schedules.create(schedule());
    await restart(slot(5) + 20_000);
    await fireAt(now);
    expect(await storedTasks()).to.have.length(0);
    expect(outcomes(await storedSchedule('every-minute'))).to.deep.equal([5, 4, 3, 2, 1].map((n) => [slot(n), 'missed', false]));
    // The next slot, which comes while it leads, runs.
    await fireAt(slot(6));
    expect((await storedTasks()).map((t) => Number(t.scheduledForUnixMs))).to.deep.equal([slot(6)]);
  });

  it('the latest missed slot is made up once within the starting deadline; the earlier ones are missed', async () => {
    await cluster.schedules.create(schedule({ startingDeadlineMs: 2 * MIN }));
    await restart(slot(5) + 20_000);
    await fireAt(now);
    const tasks = await storedTasks();
    expect(tasks.map((t) => Number(t.scheduledForUnixMs))).to.deep.equal([slot(5)]);
    expect(outcomes(await storedSchedule('every-minute'))).to.deep.equal([
      [slot(5), 'caught-up', true],
      ...[4, 3, 2, 1].map((n) => [slot(n), 'missed', false]),
    ]);
  });

  it('the missed slots recorded are bounded by the history', async () => {
    await cluster.schedules.create(schedule({ history: 3 }));
    await restart(slot(1) + 24 * 60 * MIN + 20_000);
    await fireAt(now);
    const s = await storedSchedule('every-minute');
    expect(s.runs).to.have.length(3);
    expect(outcomes(s)).to.deep.equal([0, 1, 2].map((n) => [now - (now % MIN) - n * MIN, 'missed', false]));
  });

  for (const startingDeadlineMs of [0, 2 * MIN]) {
    it(`a crash after a slot's task was stored but before the record: no second task (starting deadline ${startingDeadlineMs / MIN} min)`, async () => {
      await cluster.schedules.create(schedule({ startingDeadlineMs }));
      const before = await storedSchedule('every-minute');
      await fireAt(slot(1));
      const [task] = await storedTasks();
      // The record as it was before the slot: its write never landed.
      await store.commit([{ key: scheduleKey('every-minute'), value: encodeSchedule(before) }]);
      await restart(slot(1) + 30_000);
      await fireAt(now);
      expect((await storedTasks()).map((t) => t.id)).to.deep.equal([task!.id]);
      const s = await storedSchedule('every-minute');
      expect(s.runs.map((r) => [Number(r.slotUnixMs), r.taskId])).to.deep.equal([[slot(1), task!.id]]);
    });
  }

  it('pause skips the slots that pass; resume runs from the next one, without making any up', async () => {
    await cluster.schedules.create(schedule({ overlap: 'allow', startingDeadlineMs: 10 * MIN }));
    await cluster.schedules.pause('every-minute', true);
    now = slot(3) + 5;
    cluster.tick();
    const resumed = await cluster.schedules.pause('every-minute', false);
    expect(Number(resumed.nextSlotUnixMs)).to.equal(slot(4));
    await fireAt(slot(4));
    expect((await storedTasks()).map((t) => Number(t.scheduledForUnixMs))).to.deep.equal([slot(4)]);
  });

  it('trigger runs once now under the overlap policy; a second trigger while it runs is skipped', async () => {
    await cluster.schedules.create(schedule());
    now = T0 + 1000;
    const first = await cluster.schedules.trigger('every-minute');
    expect(first.task?.scheduledForUnixMs).to.equal(BigInt(now));
    now += 1000;
    const second = await cluster.schedules.trigger('every-minute');
    expect(second.task).to.equal(undefined);
    expect(outcomes(second.schedule)).to.deep.equal([
      [now, 'skipped', false],
      [now - 1000, 'triggered', true],
    ]);
    expect(await storedTasks()).to.have.length(1);
    // Listings carry the latest run only (they stay small); get has every one.
    expect(cluster.schedules.list().map((l) => l.runs.length)).to.deep.equal([1]);
    expect(cluster.schedules.get('every-minute').runs).to.have.length(2);
  });

  it('create refuses a name in use; remove deletes the record', async () => {
    await cluster.schedules.create(schedule());
    await cluster.schedules.create(schedule()).then(
      () => expect.fail('created twice'),
      (err: Error) => expect(err.message).to.match(/already exists/),
    );
    await cluster.schedules.remove('every-minute');
    expect(await store.get(scheduleKey('every-minute'))).to.equal(undefined);
    expect(() => cluster.schedules.get('every-minute')).to.throw(/not found/);
  });
});
