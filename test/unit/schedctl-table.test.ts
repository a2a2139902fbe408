// The table printer was rewritten for long listings (no per-cell arrays,
// cached padding, trimEnd only when a line ends in a space): it must print
// exactly what the straightforward layout below prints, for any cells.
import { expect } from 'chai';
import fc from 'fast-check';
import { create } from '@bufbuild/protobuf';
import { ListTasksResponseSchema } from '../../proto/gen/schedapi/v1/management_pb.js';
import { TaskSchema, TaskState, type Task } from '../../proto/gen/schedapi/v1/types_pb.js';
import { cell, displayWidth, printTable } from '../../schedctl/src/printers/table.js';
import { view, type Rows } from '../../schedctl/src/printers/view.js';
import { share, TaskTable, taskRows } from '../../schedctl/src/commands/tasks-table.js';
import { age, exitSummary, outcomeName, shellQuote, taskDuration, taskReason, taskStateName, truncate } from '../../schedctl/src/format.js';

/** The layout as it was: escape, measure, pad every column but the last, trim each line. */
function reference(data: Rows, color: boolean): string {
  const texts = data.rows.map((row) => data.head.map((_, i) => cell(row[i] || '-')));
  const head = data.head.map(cell);
  const widths = head.map((h, i) => Math.max(displayWidth(h), ...texts.map((r) => displayWidth(r[i]!))));
  const line = (cells: string[], shown: (s: string) => string) =>
    cells
      .map((c, i) => (i < cells.length - 1 ? shown(c) + ' '.repeat(widths[i]! - displayWidth(c)) + '  ' : shown(c)))
      .join('')
      .trimEnd();
  const bold = (s: string) => (color ? `\u001b[1m${s}\u001b[22m` : s);
  return `${[line(head, bold), ...texts.map((r) => line(r, (s) => s))].join('\n')}\n`;
}

const print = (rows: Rows, color = false) => printTable(view(ListTasksResponseSchema, create(ListTasksResponseSchema), () => rows), { color });

const text = fc.oneof(
  fc.string({ maxLength: 8 }),
  fc.string({ unit: 'binary', maxLength: 6 }),
  fc.constantFrom('', ' ', 'a ', ' \u00a0', '\t', 'x\n', '\u009b', '漢字', 'e\u0301', '😀 ', '-'),
);

describe('schedctl table layout', () => {
  it('prints what the straightforward layout prints, for any cells', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }).chain((columns) =>
          fc.record({
            head: fc.array(text, { minLength: columns, maxLength: columns }),
            rows: fc.array(fc.array(text, { minLength: 0, maxLength: columns + 1 }), { maxLength: 6 }),
          }),
        ),
        fc.boolean(),
        ({ head, rows }, color) => {
          const data: Rows = { kind: 'rows', head, rows };
          expect(print(data, color)).to.equal(reference(data, color));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('builds the tasks table page by page as it was built from the whole list', () => {
    const now = 1_700_000_000_000;
    const tasks = [
      create(TaskSchema, { id: '0190b6b2-0000-7000-8000-00000000aaaa', state: TaskState.DONE, workerId: 'w', exitCode: 3, signal: 'SIGTERM', spec: { argv: ['a b'] }, createdUnixMs: BigInt(now - 5000), startedUnixMs: BigInt(now - 4000), finishedUnixMs: BigInt(now - 1000) }),
      create(TaskSchema, { id: 't-2', state: TaskState.SCHEDULED, spec: { argv: ['run'], priority: 5 }, groupId: 'g', createdUnixMs: BigInt(now - 90_000), startedUnixMs: BigInt(now - 61_000) }),
      create(TaskSchema, { id: 't-3', state: TaskState.PENDING, pendingReason: 'x'.repeat(80) }),
    ];
    for (const groupFilter of [false, true]) {
      for (const list of [tasks, tasks.slice(0, 1), tasks.slice(2)]) {
        const table = new TaskTable({ groupFilter, wide: true });
        for (const t of list) table.add(t);
        expect(table.rows(now)).to.deep.equal({
          kind: 'rows',
          head: ['ID', 'STATE', 'OUTCOME', 'PRI', 'WORKER', 'EXIT', 'AGE', 'DURATION', 'COMMAND', 'REASON', ...(groupFilter ? [] : ['GROUP'])],
          rows: list.map((t) => [
            t.id,
            taskStateName(t.state),
            outcomeName(t),
            String(t.spec?.priority ?? 0),
            t.workerId,
            exitSummary(t),
            age(t.createdUnixMs, now),
            taskDuration(t, now),
            shellQuote(t.spec?.argv ?? []),
            taskReason(t),
            ...(groupFilter ? [] : [t.groupId]),
          ]),
        });
        expect(taskRows(list, now, { groupFilter })).to.deep.equal(narrow(list, now));
      }
    }
  });

  it('fits 80 columns with short ids, cutting COMMAND and REASON with …', () => {
    const now = 1_700_000_000_000;
    const long = create(TaskSchema, {
      id: '0190b6b2-8a0e-7f7e-9c55-3b1e2a7d9b10',
      state: TaskState.DEAD,
      workerId: '0f9c1d52-8a0e-4f7e-9c55-3b1e2a7d9b10',
      deadReason: 'worker-lost: the worker did not come back within its reconnect grace of 10s',
      spec: { argv: ['sh', '-c', 'make -j8 all && ./run-the-whole-integration-suite --verbose --retry 3'] },
      createdUnixMs: BigInt(now - 3_600_000),
    });
    const short = create(TaskSchema, { id: '0190b6b2-8a0e-7f7e-9c55-3b1e2a7d0001', state: TaskState.DONE, workerId: 'w1', spec: { argv: ['true'] }, createdUnixMs: BigInt(now - 1000) });
    const out = printTable(view(ListTasksResponseSchema, create(ListTasksResponseSchema), () => taskRows([long, short], now, { groupFilter: false })), { color: false });
    const lines = out.trimEnd().split('\n');
    for (const line of lines) expect(line.length, line).to.be.at.most(80);
    expect(lines[0]).to.match(/^ID\s+STATE\s+WORKER\s+EXIT\s+AGE\s+DURATION\s+COMMAND\s+REASON$/);
    expect(lines[1]).to.match(/^2a7d9b10\s+dead\s+0f9c1d52\s+-\s+1h\s+-\s+sh -c .*…\s+worker-lost: .*…$/);
    expect(lines[2]).to.match(/^2a7d0001\s+done\s+w1\s+0\s+1s\s+-\s+true\s+-$/);
    // A table of short rows is not cut at all, and has no REASON when none has one.
    const plain = printTable(view(ListTasksResponseSchema, create(ListTasksResponseSchema), () => taskRows([short], now, { groupFilter: false })), { color: false, headers: false });
    expect(plain).to.equal('2a7d0001  done  w1  0  1s  -  true\n');
  });

  it('shares the room left between COMMAND and REASON', () => {
    expect(share(40, 10, 10)).to.deep.equal([10, 10]);
    expect(share(40, 10, 100)).to.deep.equal([10, 28]);
    expect(share(40, 100, 10)).to.deep.equal([28, 10]);
    expect(share(40, 100, 100)).to.deep.equal([19, 19]);
    expect(share(40, 100, 0)).to.deep.equal([40, 0]);
    expect(share(5, 100, 100)).to.deep.equal([10, 10]);
  });
});

/** The narrow table as the straightforward code makes it, to compare TaskTable's with. */
function narrow(list: Task[], now: number): Rows {
  const anyReason = list.some((t) => taskReason(t) !== '');
  const rows = list.map((t) => [
    t.id.slice(-8),
    taskStateName(t.state),
    t.workerId.slice(0, 8),
    t.state === TaskState.DONE ? t.signal || String(t.exitCode) : '-',
    age(t.createdUnixMs, now),
    taskDuration(t, now),
    shellQuote(t.spec?.argv ?? []),
    taskReason(t),
  ]);
  const w = (i: number, min: number) => Math.max(min, ...rows.map((r) => r[i]!.length));
  const used = w(0, 2) + w(1, 5) + w(2, 6) + w(3, 4) + w(4, 3) + w(5, 8) + 12;
  const [c, r] = share(80 - used, w(6, 7), anyReason ? w(7, 6) : 0);
  return {
    kind: 'rows',
    head: ['ID', 'STATE', 'WORKER', 'EXIT', 'AGE', 'DURATION', 'COMMAND', ...(anyReason ? ['REASON'] : [])],
    rows: rows.map((row) => [...row.slice(0, 6), truncate(row[6]!, c), ...(anyReason ? [truncate(row[7]!, r)] : [])]),
  };
}
