// Schedules: periodic tasks from cron expressions. Each schedule is one record
// (schedules/<name>); its runs are ordinary tasks, carrying the schedule's name and
// their time slot (Task.schedule, scheduled_for_unix_ms).
//
// Only the leader fires, from the cluster's tick (which does not run while the
// leader may not act), on the leader's wall clock. A slot's task is submitted
// through intake with the idempotency key schedule:<name>:<slot>, and the record's
// last_slot moves past the slot only once the task is stored: a crash (or a
// failover) between the two makes the new leader see the slot due again, find its
// task under the key, and record it rather than create another. So a slot never
// makes two tasks, and a worker is offered only what the store holds (intake).
//
// Slots that came while no manager led (before this one began to lead) were
// missed: the latest is made up once if within starting_deadline, the others are
// recorded missed, at most `history` of them (schedule-rules.ts).
import { clone, create, toBinary } from '@bufbuild/protobuf';
import type { Cron } from 'croner';
import { ScheduleSchema, TaskSpecSchema, type Schedule, type ScheduleRun, type Task, type TaskSpec } from '../../../proto/gen/schedapi/v1/types_pb.js';
import { AlreadyExistsError, NotFoundError, ResourceExhaustedError, InvalidArgumentError } from '../../../common/errors.js';
import type { Logger } from '../../../common/logger.js';
import type { TaskOrigin } from '../intake.js';
import { encodeSchedule, scheduleKey } from '../store/records.js';
import { isTerminal } from '../task-lifecycle.js';
import { cronOf, dueSlots, historyOf, nextSlot, overlapAction, planSlots, record, run, slotKey, validateSchedule } from './schedule-rules.js';

/** Schedules one manager keeps (each fires from the tick). */
export const MAX_SCHEDULES = 1000;
/** The schedules together, as ListSchedules answers them, stay below gRPC's 4 MiB message limit. */
const MAX_LISTED_BYTES = 3 * 1024 * 1024;
/** After a failed store write, the schedule is tried again this much later (its slots stay due). */
const RETRY_MS = 1000;

/** What schedules need of the cluster. */
export interface ScheduleHost {
  now(): number;
  /** Submits one task through intake with the key (a repeat of the key answers with its task). */
  submit(spec: TaskSpec, key: string, origin: TaskOrigin): Promise<Task>;
  task(id: string): Task | undefined;
  /** The task stored under an idempotency key, if any. */
  taskOfKey(key: string): Task | undefined;
  /** Cancels a task through the normal cancel path; resolves once stored. */
  cancel(id: string): Promise<void>;
  /** Writes (null: deletes) a record; resolves once committed. */
  write(key: string, value: Uint8Array | null): Promise<unknown>;
}

interface Entry {
  s: Schedule;
  /** Undefined for a stored expression this manager cannot parse (logged; it never fires). */
  cron: Cron | undefined;
  /** Every change of the schedule runs after the one before: fires, triggers, pauses, deletion. */
  chain: Promise<unknown>;
  /** A fire is queued on the chain. */
  firing: boolean;
  retryAt: number;
}

export class Schedules {
  private readonly entries = new Map<string, Entry>();
  /** Wall-clock time this manager began to lead: slots before it were missed. */
  private leadingSince: number;

  constructor(
    private readonly host: ScheduleHost,
    private readonly log: Logger,
  ) {
    this.leadingSince = host.now();
  }

  /** load puts the stored schedules in place when this manager begins to lead. */
  load(schedules: Iterable<Schedule>): void {
    this.leadingSince = this.host.now();
    for (const s of schedules) {
      let cron: Cron | undefined;
      try {
        cron = cronOf(s.cron, s.timeZone);
      } catch (err) {
        this.log.error({ err, schedule: s.name }, 'stored schedule does not parse; it will not fire');
      }
      this.entries.set(s.name, { s, cron, chain: Promise.resolve(), firing: false, retryAt: 0 });
    }
  }

  get size(): number {
    return this.entries.size;
  }

  /** Every schedule, by name, each with its latest run only (schedules show has them all). */
  list(): Schedule[] {
    return [...this.entries.values()]
      .map((e) => ({ ...e.s, runs: e.s.runs.slice(0, 1) }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  get(name: string): Schedule {
    return this.entry(name).s;
  }

  /** create stores a new schedule; its first slot is the first after now. */
  async create(req: Schedule): Promise<Schedule> {
    const s = clone(ScheduleSchema, req);
    const cron = validateSchedule(s);
    const now = this.host.now();
    s.runs = [];
    s.createdUnixMs = BigInt(now);
    s.lastSlotUnixMs = BigInt(now);
    const next = nextSlot(cron, now);
    if (next === 0) throw new InvalidArgumentError('cron', `${JSON.stringify(s.cron)} gives no time after now`);
    s.nextSlotUnixMs = s.paused ? 0n : BigInt(next);
    // The name is taken in this turn, before any await: two creates cannot both store it.
    if (this.entries.has(s.name)) throw new AlreadyExistsError(`schedule ${JSON.stringify(s.name)} already exists`);
    if (this.entries.size >= MAX_SCHEDULES) throw new ResourceExhaustedError(`at most ${MAX_SCHEDULES} schedules; remove one first`);
    const listed = this.list().reduce((sum, l) => sum + toBinary(ScheduleSchema, l).byteLength, toBinary(ScheduleSchema, s).byteLength);
    if (listed > MAX_LISTED_BYTES) throw new ResourceExhaustedError(`the schedules would take ${listed} bytes, more than ${MAX_LISTED_BYTES}: remove some, or make their env smaller`);
    const entry: Entry = { s, cron, chain: Promise.resolve(), firing: false, retryAt: 0 };
    this.entries.set(s.name, entry);
    const stored = this.host.write(scheduleKey(s.name), encodeSchedule(s));
    entry.chain = stored.catch(() => undefined);
    try {
      await stored;
    } catch (err) {
      if (this.entries.get(s.name) === entry) this.entries.delete(s.name);
      throw err;
    }
    return s;
  }

  /** remove deletes a schedule (its tasks are left as they are). */
  remove(name: string): Promise<Schedule> {
    return this.serial(name, async (entry) => {
      await this.host.write(scheduleKey(name), null);
      this.entries.delete(name);
      return entry.s;
    });
  }

  /** pause stops (or resumes) firing; slots that pass while paused are skipped, not made up. */
  pause(name: string, pause: boolean): Promise<Schedule> {
    return this.serial(name, async (entry) => {
      if (entry.s.paused === pause) return entry.s;
      const now = this.host.now();
      const next = clone(ScheduleSchema, entry.s);
      next.paused = pause;
      if (!pause) next.lastSlotUnixMs = BigInt(Math.max(now, Number(next.lastSlotUnixMs)));
      next.nextSlotUnixMs = pause || !entry.cron ? 0n : BigInt(nextSlot(entry.cron, Number(next.lastSlotUnixMs)));
      return this.store(entry, next);
    });
  }

  /** trigger runs the schedule once now, under its overlap policy; its slot is now and its outcome "triggered". */
  trigger(name: string): Promise<{ schedule: Schedule; task: Task | undefined }> {
    return this.serial(name, async (entry) => {
      const slot = this.host.now();
      const next = clone(ScheduleSchema, entry.s);
      const r = await this.runSlot(next, slot, 'triggered', slotKey(name, slot, true));
      record(next, [r.run]);
      return { schedule: await this.store(entry, next), task: r.task };
    });
  }

  /** tick fires the schedules whose next slot has come (called from the cluster's tick, only while leading). */
  tick(): void {
    const now = this.host.now();
    for (const [name, entry] of this.entries) {
      const due = entry.s.nextSlotUnixMs;
      if (entry.firing || entry.s.paused || !entry.cron || due === 0n || Number(due) > now || entry.retryAt > now) continue;
      entry.firing = true;
      this.serial(name, (e) => this.fire(e))
        .catch((err: unknown) => {
          entry.retryAt = this.host.now() + RETRY_MS;
          this.log.warn({ err, schedule: name }, 'schedule could not fire; trying again');
        })
        .finally(() => (entry.firing = false));
    }
  }

  /** fire handles every slot due now: runs the latest (or makes it up), records the missed ones. */
  private async fire(entry: Entry): Promise<void> {
    const cron = entry.cron!;
    const s = entry.s;
    const now = this.host.now();
    const due = dueSlots(cron, Number(s.lastSlotUnixMs), now, historyOf(s));
    const plan = planSlots(due, now, this.leadingSince, s.startingDeadlineMs);
    const next = clone(ScheduleSchema, s);
    const runs: ScheduleRun[] = plan.missed.map((slot) => {
      // Stored before a crash kept the record from saying so: it ran.
      const task = this.host.taskOfKey(slotKey(s.name, slot));
      return task ? run(slot, 'ran', task.id) : run(slot, 'missed');
    });
    if (plan.missed.length > 0) this.log.warn({ schedule: s.name, missed: plan.missed.length }, 'schedule missed slots while no manager led');
    if (plan.run) runs.push((await this.runSlot(next, plan.run.slot, plan.run.outcome, slotKey(s.name, plan.run.slot))).run);
    record(next, runs);
    if (due.length > 0) next.lastSlotUnixMs = BigInt(due[due.length - 1]!);
    next.nextSlotUnixMs = BigInt(nextSlot(cron, Math.max(now, Number(next.lastSlotUnixMs))));
    await this.store(entry, next);
  }

  /** runSlot makes the slot's task, unless the overlap policy skips it; replace cancels the previous run first. */
  private async runSlot(s: Schedule, slot: number, outcome: string, key: string): Promise<{ run: ScheduleRun; task: Task | undefined }> {
    // The slot's task may exist already (a crash, or a failed write, came before the record was
    // stored): submitting again with its key answers with it, once it is stored, whatever the overlap.
    const made = this.host.taskOfKey(key) !== undefined;
    const prevId = s.runs.find((r) => r.taskId)?.taskId;
    const prev = prevId ? this.host.task(prevId) : undefined;
    const action = made ? 'submit' : overlapAction(s.overlap, prev !== undefined && !isTerminal(prev));
    if (action === 'skip') {
      this.log.info({ schedule: s.name, slot, running: prevId }, 'schedule slot skipped: the previous run has not ended');
      return { run: run(slot, 'skipped'), task: undefined };
    }
    if (action === 'replace') await this.host.cancel(prevId!);
    // A copy: intake fills in the resources of the spec it is given.
    const task = await this.host.submit(clone(TaskSpecSchema, s.spec ?? create(TaskSpecSchema)), key, {
      schedule: s.name,
      scheduledForUnixMs: BigInt(slot),
    });
    this.log.info({ schedule: s.name, slot, task: task.id, outcome }, 'schedule ran');
    return { run: run(slot, outcome, task.id), task };
  }

  /** store writes the schedule's new record and, once it is committed, makes it the one in memory. */
  private async store(entry: Entry, next: Schedule): Promise<Schedule> {
    await this.host.write(scheduleKey(next.name), encodeSchedule(next));
    entry.s = next;
    return next;
  }

  private entry(name: string): Entry {
    const entry = this.entries.get(name);
    if (!entry) throw new NotFoundError('schedule', name);
    return entry;
  }

  /** serial runs fn after every change of the schedule queued before it; fails NotFound if it is gone by then. */
  private serial<T>(name: string, fn: (entry: Entry) => Promise<T>): Promise<T> {
    const entry = this.entry(name);
    const result = entry.chain.then(() => {
      if (this.entries.get(name) !== entry) throw new NotFoundError('schedule', name);
      return fn(entry);
    });
    entry.chain = result.catch(() => undefined);
    return result;
  }
}
