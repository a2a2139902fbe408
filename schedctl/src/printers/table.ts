// Human output: kubectl-like columns separated by two spaces, or aligned
// "Label: value" lines for a single item.
import Table from 'cli-table3';
import type { Fields, Rows, View } from './view.js';

const NO_BORDER = {
  top: '', 'top-mid': '', 'top-left': '', 'top-right': '',
  bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '',
  left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '  ',
};

/**
 * Values come from remote machines (hostnames, labels, argv): escape control
 * characters so they can neither break the layout nor send terminal escapes.
 */
export function cell(value: string): string {
  // eslint-disable-next-line no-control-regex
  return value.replace(/[\x00-\x1f\x7f]/g, (c) =>
    c === '\n' ? '\\n' : c === '\t' ? '\\t' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

function rows(data: Rows, color: boolean): string {
  const table = new Table({
    head: data.head,
    chars: NO_BORDER,
    // Colour only on a terminal: piped output must stay free of escape codes.
    style: { head: color ? ['bold'] : [], border: [], 'padding-left': 0, 'padding-right': 0 },
  });
  for (const row of data.rows) table.push(row.map((v) => cell(v || '-')));
  return `${table.toString().split('\n').map((line) => line.trimEnd()).join('\n')}\n`;
}

function fields(data: Fields): string {
  const width = Math.max(0, ...data.fields.map(([label]) => label.length)) + 2;
  let out = data.fields.map(([label, value]) => `${`${label}:`.padEnd(width)}${cell(value || '-')}\n`).join('');
  for (const block of data.blocks ?? []) {
    // Output tails are shown as the process wrote them.
    out += `\n${block.title}:\n${block.text}${block.text.endsWith('\n') ? '' : '\n'}`;
  }
  return out;
}

export function printTable(view: View, color: boolean): string {
  const data = view.human();
  return data.kind === 'rows' ? rows(data, color) : fields(data);
}
