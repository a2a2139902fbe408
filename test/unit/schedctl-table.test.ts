// The table printer was rewritten for long listings (no per-cell arrays,
// cached padding, trimEnd only when a line ends in a space): it must print
// exactly what the straightforward layout below prints, for any cells.
import { expect } from 'chai';
import fc from 'fast-check';
import { create } from '@bufbuild/protobuf';
import { ListTasksResponseSchema } from '../../proto/gen/sched/v1/management_pb.js';
import { TaskSchema, TaskState } from '../../proto/gen/sched/v1/types_pb.js';
import { cell, displayWidth, printTable } from '../../schedctl/src/printers/table.js';
import { view, type Rows } from '../../schedctl/src/printers/view.js';
import { TaskTable } from '../../schedctl/src/commands/tasks-ls.js';
import { age, exitSummary, shellQuote, taskDuration, taskReason, taskStateName, truncate } from '../../schedctl/src/format.js';

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

const print = (rows: Rows, color = false) => printTable(view(ListTasksResponseSchema, create(ListTasksResponseSchema), () => rows), color);

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
      create(TaskSchema, { id: 't-1', state: TaskState.DONE, workerId: 'w', exitCode: 3, signal: 'SIGTERM', spec: { argv: ['a b'] }, createdUnixMs: BigInt(now - 5000), startedUnixMs: BigInt(now - 4000), finishedUnixMs: BigInt(now - 1000) }),
      create(TaskSchema, { id: 't-2', state: TaskState.SCHEDULED, spec: { argv: ['run'], priority: 5 }, groupId: 'g', createdUnixMs: BigInt(now - 90_000), startedUnixMs: BigInt(now - 61_000) }),
      create(TaskSchema, { id: 't-3', state: TaskState.PENDING, pendingReason: 'x'.repeat(80) }),
    ];
    for (const groupFilter of [false, true]) {
      for (const list of [tasks, tasks.slice(0, 1), tasks.slice(2)]) {
        const table = new TaskTable(groupFilter);
        for (const t of list) table.add(t);
        const showPriority = list.some((t) => (t.spec?.priority ?? 0) !== 0);
        const showGroup = !groupFilter && list.some((t) => t.groupId !== '');
        expect(table.rows(now)).to.deep.equal({
          kind: 'rows',
          head: ['ID', 'STATE', ...(showPriority ? ['PRI'] : []), 'WORKER', 'EXIT', 'REASON', 'COMMAND', 'AGE', 'DURATION', ...(showGroup ? ['GROUP'] : [])],
          rows: list.map((t) => [
            t.id,
            taskStateName(t.state),
            ...(showPriority ? [String(t.spec?.priority ?? 0)] : []),
            t.workerId,
            exitSummary(t),
            truncate(taskReason(t), 50),
            truncate(shellQuote(t.spec?.argv ?? []), 60),
            age(t.createdUnixMs, now),
            taskDuration(t, now),
            ...(showGroup ? [t.groupId] : []),
          ]),
        });
      }
    }
  });
});
