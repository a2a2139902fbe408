// The tasks table of tasks ls (and of tasks ls --watch): narrow by default, so
// that ordinary rows fit a terminal of 80 columns, or wide (-o wide).
//
// Narrow: ID is a task's short id (its last 8 characters: the random part of
// its UUIDv7, where the ids of a burst, which share their first characters,
// differ) and WORKER the worker id's first 8 (a prefix), both of which the
// management node takes wherever an id goes; COMMAND and REASON share what
// the other columns leave, cut with "…". Wide: full ids, every column, nothing
// cut.
import type { Task } from '../../../proto/gen/schedapi/v1/types_pb.js';
import { TaskState } from '../../../proto/gen/schedapi/v1/types_pb.js';
import { ageOfMs, exitSummary, outcomeName, runTimeOfMs, shellQuote, taskReason, taskStateName, truncate } from '../format.js';
import type { Rows } from '../printers/view.js';

/** A task's short id: its last 8 characters (the manager takes it as an id). */
export const SHORT_ID = 8;
export const shortTaskId = (id: string): string => (id.length > SHORT_ID ? id.slice(-SHORT_ID) : id);
/** A worker id's first 8 characters: a prefix, which the manager takes for the worker. */
export const shortWorkerId = (id: string): string => (id.length > SHORT_ID ? id.slice(0, SHORT_ID) : id);

/** The width a narrow table fits when the terminal's is unknown (piped output). */
export const DEFAULT_WIDTH = 80;
/** Between two columns (printers/table.ts). */
const GAP = 2;
/** COMMAND and REASON are never cut shorter than this, even if the line then passes the width. */
const MIN_CUT = 10;

export interface TaskTableOptions {
  /** Listing one group: GROUP says nothing (wide only). */
  groupFilter: boolean;
  /** -o wide. */
  wide?: boolean;
  /** Columns a narrow table fits (default 80). */
  width?: number;
}

const NARROW_HEAD = ['ID', 'STATE', 'WORKER', 'EXIT', 'AGE', 'DURATION', 'COMMAND', 'REASON'];

/** The narrow EXIT: the exit code, or the signal that killed it (its exit code is then 128+N, said by -o wide). */
function exitOf(t: Task): string {
  if (t.state !== TaskState.DONE) return '-';
  return t.signal || String(t.exitCode);
}

/**
 * The table, built as the tasks come, one at a time (paging.ts): each task's
 * cells are made at once and its times kept as numbers; only AGE and DURATION
 * wait for `now`, and the cut of COMMAND and REASON for the last task (the
 * widest cell of each column decides). The listing can then drop each decoded
 * task: kept, 10,000 of them (~15 objects each) were copied by the garbage
 * collector from young to old space as the table was built, which cost more
 * than building it.
 */
export class TaskTable {
  /** Per task: narrow ID, STATE, WORKER, EXIT, COMMAND, REASON; wide ID, STATE, OUTCOME, PRI, WORKER, EXIT, COMMAND, REASON, GROUP. */
  private readonly cells: string[][] = [];
  private readonly created: number[] = [];
  private readonly started: number[] = [];
  private readonly finished: number[] = [];
  /** Narrow: the widest cell so far of ID, STATE, WORKER, EXIT, COMMAND, REASON. */
  private readonly widths = [0, 0, 0, 0, 0, 0];
  private readonly wide: boolean;

  constructor(private readonly opts: TaskTableOptions) {
    this.wide = opts.wide === true;
  }

  add(t: Task): void {
    const command = shellQuote(t.spec?.argv ?? []);
    const reason = taskReason(t);
    if (this.wide) {
      this.cells.push([t.id, taskStateName(t.state), outcomeName(t), String(t.spec?.priority ?? 0), t.workerId, exitSummary(t), command, reason, t.groupId]);
    } else {
      const row = [shortTaskId(t.id), taskStateName(t.state), shortWorkerId(t.workerId), exitOf(t), command, reason];
      for (let i = 0; i < row.length; i++) if (row[i]!.length > this.widths[i]!) this.widths[i] = row[i]!.length;
      this.cells.push(row);
    }
    this.created.push(Number(t.createdUnixMs));
    this.started.push(Number(t.startedUnixMs));
    this.finished.push(Number(t.finishedUnixMs));
  }

  /** The rows, made of the cells in place (call once). */
  rows(now: number): Rows {
    return this.wide ? this.wideRows(now) : this.narrowRows(now);
  }

  private wideRows(now: number): Rows {
    const head = ['ID', 'STATE', 'OUTCOME', 'PRI', 'WORKER', 'EXIT', 'AGE', 'DURATION', 'COMMAND', 'REASON', ...(this.opts.groupFilter ? [] : ['GROUP'])];
    this.cells.forEach((row, i) => {
      const group = row.pop()!;
      const [command, reason] = row.splice(6, 2);
      row.push(ageOfMs(this.created[i]!, now), runTimeOfMs(this.started[i]!, this.finished[i]!, now), command!, reason!);
      if (!this.opts.groupFilter) row.push(group);
    });
    return { kind: 'rows', head, rows: this.cells };
  }

  private narrowRows(now: number): Rows {
    const times = this.cells.map((_, i) => [ageOfMs(this.created[i]!, now), runTimeOfMs(this.started[i]!, this.finished[i]!, now)] as const);
    const anyReason = this.widths[5]! > 0;
    // What ID .. DURATION take, with the gaps after them, and what is left for COMMAND (and REASON).
    const fixed = [0, 1, 2, 3].map((i) => Math.max(this.widths[i]!, NARROW_HEAD[i]!.length, 1));
    const ageWidth = Math.max(3, ...times.map(([a]) => a.length));
    const durationWidth = Math.max(8, ...times.map(([, d]) => d.length));
    const used = fixed.reduce((a, b) => a + b, 0) + ageWidth + durationWidth + 6 * GAP;
    const left = Math.max(0, (this.opts.width ?? DEFAULT_WIDTH) - used);
    const [commandWidth, reasonWidth] = share(left, Math.max(this.widths[4]!, 7), anyReason ? Math.max(this.widths[5]!, 6) : 0);
    this.cells.forEach((row, i) => {
      const reason = row.pop()!;
      const command = row.pop()!;
      row.push(times[i]![0], times[i]![1], truncate(command, commandWidth));
      if (anyReason) row.push(truncate(reason, reasonWidth));
    });
    return { kind: 'rows', head: anyReason ? NARROW_HEAD : NARROW_HEAD.slice(0, -1), rows: this.cells };
  }
}

/**
 * How COMMAND and REASON share `left` columns (a gap between them when there
 * is a REASON): each gets what it needs if both fit; else the one that needs
 * less keeps it up to half, and the other gets the rest; never below MIN_CUT.
 */
export function share(left: number, command: number, reason: number): [number, number] {
  if (reason === 0) return [Math.max(MIN_CUT, left), 0];
  const room = left - GAP;
  if (command + reason <= room) return [command, reason];
  const half = Math.floor(room / 2);
  const c = command <= half ? command : reason <= half ? room - reason : half;
  return [Math.max(MIN_CUT, c), Math.max(MIN_CUT, room - c)];
}

export function taskRows(list: readonly Task[], now: number, opts: TaskTableOptions): Rows {
  const table = new TaskTable(opts);
  for (const t of list) table.add(t);
  return table.rows(now);
}
