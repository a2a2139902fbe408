import { expect } from 'chai';
import { create } from '@bufbuild/protobuf';
import { parse as parseYaml } from 'yaml';
import { ListWorkersResponseSchema } from '../../proto/gen/schedapi/v1/management_pb.js';
import { TaskSchema, TaskState } from '../../proto/gen/schedapi/v1/types_pb.js';
import { idsIn, printerFor, view } from '../../schedctl/src/printers/index.js';
import { taskFields } from '../../schedctl/src/commands/tasks-show.js';

const ESC = '\u001b';

const workers = create(ListWorkersResponseSchema, {
  workers: [
    { id: 'w-1', address: '10.0.0.1:5000', connectedUnixMs: 1_700_000_000_000n },
    { id: 'w-22', address: '10.0.0.2:5000' },
  ],
});
const workersView = view(ListWorkersResponseSchema, workers, () => ({
  kind: 'rows',
  head: ['ID', 'ADDRESS', 'STATE'],
  rows: [
    ['w-1', '10.0.0.1:5000', 'connected'],
    ['w-22', '', 'disconnected,draining'],
  ],
}));

describe('schedctl printers', () => {
  describe('table', () => {
    it('prints an upper-case header and one line per row, without escape codes when not a TTY', () => {
      const out = printerFor('table', false)(workersView);
      expect(out).to.not.include(ESC);
      const lines = out.trimEnd().split('\n');
      expect(lines).to.have.length(3);
      expect(lines[0]).to.match(/^ID\s+ADDRESS\s+STATE$/);
      expect(lines[1]).to.match(/^w-1\s+10\.0\.0\.1:5000\s+connected$/);
      // Empty cells show "-" so columns stay countable with awk.
      expect(lines[2]!.split(/\s+/)).to.deep.equal(['w-22', '-', 'disconnected,draining']);
    });

    it('aligns columns and leaves no trailing spaces', () => {
      const lines = printerFor('table', false)(workersView).trimEnd().split('\n');
      const col = lines[0]!.indexOf('ADDRESS');
      expect(lines.map((l) => l.slice(col, col + 1))).to.deep.equal(['A', '1', '-']);
      for (const line of lines) expect(line).to.equal(line.trimEnd());
    });

    it('escapes control characters coming from remote data', () => {
      const v = view(ListWorkersResponseSchema, workers, () => ({ kind: 'rows', head: ['X'], rows: [[`a\nb${ESC}[31m`]] }));
      const out = printerFor('table', false)(v);
      expect(out).to.include('a\\nb\\x1b[31m');
      expect(out.trimEnd().split('\n')).to.have.length(2);
    });

    it('escapes C1 control characters too (U+009B is CSI on some terminals)', () => {
      const v = view(ListWorkersResponseSchema, workers, () => ({ kind: 'rows', head: ['X'], rows: [['a\u009b31m']] }));
      expect(printerFor('table', false)(v)).to.equal('X\na\\x9b31m\n');
    });

    it('makes the header bold on a terminal, padding outside the escape codes', () => {
      const lines = printerFor('table', true)(workersView).split('\n');
      expect(lines[0]).to.equal(`${ESC}[1mID${ESC}[22m    ${ESC}[1mADDRESS${ESC}[22m        ${ESC}[1mSTATE${ESC}[22m`);
      // Only the header is coloured.
      expect(lines.slice(1).join('\n')).to.not.include(ESC);
      expect(lines[1]).to.equal('w-1   10.0.0.1:5000  connected');
    });

    it('aligns wide (CJK, emoji) and combining characters by the columns they take', () => {
      const v = view(ListWorkersResponseSchema, workers, () => ({
        kind: 'rows',
        head: ['HOST', 'STATE'],
        rows: [
          ['主机', 'a'],
          ['🚀x', 'b'],
          ['e\u0301', 'c'],
          ['hosts', 'd'],
        ],
      }));
      expect(printerFor('table', false)(v)).to.equal(['HOST   STATE', '主机   a', '🚀x    b', 'e\u0301      c', 'hosts  d', ''].join('\n'));
    });

    it('shows missing and empty cells as "-" and leaves an empty list with its header', () => {
      const v = view(ListWorkersResponseSchema, workers, () => ({ kind: 'rows', head: ['A', 'B', 'C'], rows: [['x', ''], ['yyyy', 'z', 'w']] }));
      expect(printerFor('table', false)(v)).to.equal('A     B  C\nx     -  -\nyyyy  z  w\n');
      const empty = view(ListWorkersResponseSchema, workers, () => ({ kind: 'rows', head: ['ID', 'STATE'], rows: [] }));
      expect(printerFor('table', false)(empty)).to.equal('ID  STATE\n');
    });

    it('prints 10,000 rows as a header plus one aligned line per row', () => {
      const head = ['ID', 'ADDRESS', 'STATE', 'HOSTNAME', 'CPU', 'MEM', 'TASKS', 'LAST SEEN'];
      const n = 10_000;
      const rows = Array.from({ length: n }, (_, i) => [
        `w-${i}`,
        `10.0.${i >> 8}.${i & 255}:5000`,
        i % 7 ? 'connected' : 'disconnected,draining',
        i === 4321 ? '' : `host-${i}.example.com`,
        '1.5/4',
        '256Mi/1Gi',
        String(i % 13),
        `${i % 60}s ago`,
      ]);
      const v = view(ListWorkersResponseSchema, workers, () => ({ kind: 'rows', head, rows }));
      const out = printerFor('table', false)(v);
      expect(out.endsWith('\n')).to.equal(true);
      const lines = out.slice(0, -1).split('\n');
      expect(lines).to.have.length(n + 1);
      expect(lines[0]).to.equal(
        'ID      ADDRESS           STATE                  HOSTNAME               CPU    MEM        TASKS  LAST SEEN',
      );
      // Every column starts where its header does, on every line.
      // (Plain comparisons: 80,000 chai assertions would dominate the run time.)
      const starts = head.map((h) => lines[0]!.indexOf(h));
      const wrong: string[] = [];
      for (let r = 0; r < n; r++) {
        const line = lines[r + 1]!;
        const expected = rows[r]!.map((v) => v || '-');
        for (let c = 0; c < head.length; c++) {
          const end = c + 1 < head.length ? starts[c + 1]! : line.length;
          const ok = line.slice(starts[c]!, end).trimEnd() === expected[c] && (c === 0 || line[starts[c]! - 1] === ' ');
          if (!ok) wrong.push(`row ${r} column ${head[c]}: ${JSON.stringify(line)}`);
        }
        if (line !== line.trimEnd()) wrong.push(`row ${r} ends in spaces`);
      }
      expect(wrong.slice(0, 5)).to.deep.equal([]);
      expect(lines[4322]!.split(/\s+/)[3]).to.equal('-');
    });

    it('prints a task as aligned fields with the output tails as text', () => {
      const task = create(TaskSchema, {
        id: 't-1',
        state: TaskState.DONE,
        spec: { argv: ['sh', '-c', 'echo hi'], env: { B: '2', A: '1' } },
        exitCode: 0,
        createdUnixMs: 1_700_000_000_000n,
        stdoutTail: new TextEncoder().encode('hi\n'),
      });
      const out = printerFor('table', false)(view(TaskSchema, task, () => taskFields(task, 1_700_000_005_000)));
      expect(out).to.match(/^ID:\s+t-1$/m);
      expect(out).to.match(/^State:\s+done$/m);
      expect(out).to.match(/^Command:\s+sh -c 'echo hi'$/m);
      expect(out).to.match(/^Env:\s+A=1, B=2$/m);
      expect(out).to.match(/^Exit code:\s+0$/m);
      expect(out).to.match(/^Created:\s+2023-11-14T22:13:20\.000Z \(5s ago\)$/m);
      expect(out).to.include('\nStdout (tail):\nhi\n');
      expect(out).to.not.include('Stderr');
    });
  });

  describe('json', () => {
    it('prints the protobuf JSON form, including zero values', () => {
      const task = create(TaskSchema, { id: 't-1', state: TaskState.DONE, exitCode: 0, createdUnixMs: 5n });
      const parsed = JSON.parse(printerFor('json', true)(view(TaskSchema, task, () => ({ kind: 'rows', head: [], rows: [] }))));
      expect(parsed).to.include({ id: 't-1', state: 'TASK_STATE_DONE', exitCode: 0, createdUnixMs: '5' });
    });

    it('prints lists under their response field', () => {
      const parsed = JSON.parse(printerFor('json', false)(workersView));
      expect(parsed.workers.map((w: { id: string }) => w.id)).to.deep.equal(['w-1', 'w-22']);
      expect(parsed.workers[0].connectedUnixMs).to.equal('1700000000000');
    });

    it('never calls the table rendering', () => {
      const v = view(TaskSchema, create(TaskSchema, {}), () => {
        throw new Error('table built');
      });
      expect(() => printerFor('json', false)(v)).to.not.throw();
    });
  });

  describe('name, wide, --no-headers', () => {
    it('-o name prints the full ids, one a line: the command\'s, else those in the message', () => {
      expect(printerFor('name', false)(workersView)).to.equal('w-1\nw-22\n');
      const task = create(TaskSchema, { id: '0190b6b2-8a0e-7f7e-9c55-3b1e2a7d9b10' });
      expect(printerFor('name', false)(view(TaskSchema, task, () => ({ kind: 'rows', head: [], rows: [] })))).to.equal(`${task.id}\n`);
      expect(printerFor('name', false)(view(TaskSchema, task, () => ({ kind: 'rows', head: [], rows: [] }), { names: () => ['a', 'b'] }))).to.equal('a\nb\n');
      expect(idsIn(create(ListWorkersResponseSchema))).to.deep.equal([]);
      expect(idsIn({ task: { id: 't' } })).to.deep.equal(['t']);
      expect(idsIn({ object: { case: 'worker', value: { id: 'w' } } })).to.deep.equal(['w']);
    });

    it('-o wide asks the view for its wide rendering; --no-headers leaves the header out', () => {
      const v = view(ListWorkersResponseSchema, workers, (wide) => ({ kind: 'rows', head: ['ID'], rows: [[wide ? 'full-id' : 'short']] }));
      expect(printerFor('wide', false)(v)).to.equal('ID\nfull-id\n');
      expect(printerFor('table', false)(v)).to.equal('ID\nshort\n');
      expect(printerFor('table', false, false)(v)).to.equal('short\n');
      expect(printerFor('table', true, false)(workersView)).to.not.include(ESC);
      // A view with no columns (only -o json shows what it holds) prints nothing at all.
      expect(printerFor('wide', false)(view(TaskSchema, create(TaskSchema), () => ({ kind: 'rows', head: [], rows: [] })))).to.equal('');
    });

    it('json and yaml leave out the fields a command omits', () => {
      const v = view(ListWorkersResponseSchema, workers, () => ({ kind: 'rows', head: [], rows: [] }), { omit: ['nextPageToken'] });
      expect(Object.keys(JSON.parse(printerFor('json', false)(v)))).to.deep.equal(['workers']);
      expect(Object.keys(parseYaml(printerFor('yaml', false)(v)) as object)).to.deep.equal(['workers']);
      expect(Object.keys(JSON.parse(printerFor('json', false)(workersView)))).to.include('nextPageToken');
    });
  });

  describe('yaml', () => {
    it('prints the same document as json', () => {
      const yaml = printerFor('yaml', false)(workersView);
      expect(parseYaml(yaml)).to.deep.equal(JSON.parse(printerFor('json', false)(workersView)));
    });
  });
});
