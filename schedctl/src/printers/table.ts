// Human output: kubectl-like columns separated by two spaces, or aligned
// "Label: value" lines for a single item.
import type { Fields, Rows, View } from './view.js';

/** Between two columns. */
const GAP = '  ';
const BOLD = '\u001b[1m';
const BOLD_OFF = '\u001b[22m';

/**
 * Values come from remote machines (hostnames, labels, argv): escape control
 * characters (C0, DEL and C1, which some terminals read as CSI) so they can
 * neither break the layout nor send terminal escapes.
 */
export function cell(value: string): string {
  // eslint-disable-next-line no-control-regex
  return value.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) =>
    c === '\n' ? '\\n' : c === '\t' ? '\\t' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

// Printable ASCII: one column per character, the common case.
const NARROW = /^[\x20-\x7e]*$/;
const MARK = /^[\p{Mn}\p{Me}]$/u;

/** Combining marks, zero-width spaces and joiners, and variation selectors take no column. */
function isZeroWidth(cp: number, ch: string): boolean {
  return (cp >= 0x200b && cp <= 0x200f) || cp === 0x2060 || (cp >= 0xfe00 && cp <= 0xfe0f) || cp === 0xfeff || MARK.test(ch);
}

/** East Asian wide and fullwidth characters and pictographs (emoji) take two columns. */
function isWide(cp: number): boolean {
  return (
    (cp >= 0x1100 && cp <= 0x115f) || // Hangul Jamo initials
    (cp >= 0x231a && cp <= 0x231b) ||
    (cp >= 0x2e80 && cp <= 0x303e) || // CJK radicals, punctuation
    (cp >= 0x3041 && cp <= 0x33ff) || // kana, CJK compatibility
    (cp >= 0x3400 && cp <= 0x4dbf) || // CJK extension A
    (cp >= 0x4e00 && cp <= 0x9fff) || // CJK unified ideographs
    (cp >= 0xa000 && cp <= 0xa4cf) || // Yi
    (cp >= 0xac00 && cp <= 0xd7a3) || // Hangul syllables
    (cp >= 0xf900 && cp <= 0xfaff) || // CJK compatibility ideographs
    (cp >= 0xfe30 && cp <= 0xfe4f) || // CJK compatibility forms
    (cp >= 0xff00 && cp <= 0xff60) || // fullwidth forms
    (cp >= 0xffe0 && cp <= 0xffe6) ||
    (cp >= 0x1f300 && cp <= 0x1f6ff) || // pictographs, emoticons, transport
    (cp >= 0x1f900 && cp <= 0x1faff) || // supplemental pictographs
    (cp >= 0x20000 && cp <= 0x3fffd) // CJK extensions B and beyond
  );
}

/**
 * Terminal columns a (control-character free) string takes: its length for
 * ASCII, else two per wide character and none for combining marks.
 */
export function displayWidth(text: string): number {
  if (NARROW.test(text)) return text.length;
  let width = 0;
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    width += isWide(cp) ? 2 : isZeroWidth(cp, ch) ? 0 : 1;
  }
  return width;
}

/** Whitespace that String.prototype.trimEnd() removes (as \s). */
const SPACE = /\s/;

/** Whether a line ending in `text` loses something to trimEnd(): only then is it worth the call. */
function endsInSpace(text: string): boolean {
  const c = text.charCodeAt(text.length - 1);
  return c === 0x20 || (c > 0x7e && SPACE.test(text[text.length - 1]!));
}

/**
 * Linear in the number of cells: one pass taking the column widths, one pass
 * writing the padded lines. The last column is not padded, so no line ends in
 * spaces. Listings print thousands of rows, so the common case (every cell
 * printable ASCII) allocates nothing per cell: cells that need escaping are
 * kept aside, escaped, with their widths; padding comes from a table of
 * strings; a line is trimmed only when its last cell ends in a space.
 */
function rows(data: Rows, color: boolean, headers: boolean): string {
  const columns = data.head.length;
  // A view with no columns (a command whose answer only -o json shows) prints nothing.
  if (columns === 0) return '';
  const count = data.rows.length;
  const head = data.head.map(cell);
  // --no-headers: the header neither prints nor widens its column.
  const headWidths = headers ? head.map(displayWidth) : head.map(() => 0);
  const widths = [...headWidths];
  // By cell index (row * columns + column): the escaped text and its width.
  const escaped = new Map<number, [string, number]>();
  let k = 0;
  for (const row of data.rows) {
    for (let i = 0; i < columns; i++, k++) {
      // Empty cells show "-" so columns stay countable with awk.
      const text = row[i] || '-';
      let width: number;
      if (NARROW.test(text)) {
        width = text.length;
      } else {
        const e = cell(text);
        width = displayWidth(e);
        escaped.set(k, [e, width]);
      }
      if (width > widths[i]!) widths[i] = width;
    }
  }

  // padGap[n]: n spaces and the gap between columns.
  const padGap: string[] = [];
  for (let n = 0, most = Math.max(0, ...widths); n <= most; n++) padGap.push(' '.repeat(n) + GAP);
  const last = columns - 1;
  // One more, empty, so that join() ends the text with a newline without a copy of it all.
  const off = headers ? 1 : 0;
  const lines = new Array<string>(count + off + 1);
  let line = '';
  for (let i = 0; headers && i < columns; i++) {
    // Colour only on a terminal: piped output must stay free of escape codes.
    line += color ? `${BOLD}${head[i]}${BOLD_OFF}` : head[i];
    if (i < last) line += padGap[widths[i]! - headWidths[i]!];
  }
  if (headers) lines[0] = line.trimEnd();
  const anyEscaped = escaped.size > 0;
  // A line's pieces (cell, padding, cell, ...) joined at once: cheaper than a string grown piece by piece.
  const pieces = new Array<string>(Math.max(0, 2 * columns - 1));
  k = 0;
  for (let r = 0; r < count; r++) {
    const row = data.rows[r]!;
    let text = '';
    for (let i = 0; i < columns; i++, k++) {
      text = row[i] || '-';
      let width = text.length;
      const e = anyEscaped ? escaped.get(k) : undefined;
      if (e) [text, width] = e;
      pieces[2 * i] = text;
      if (i < last) pieces[2 * i + 1] = padGap[widths[i]! - width]!;
    }
    line = pieces.join('');
    // A value may end in spaces; the old layout trimmed them too.
    lines[r + off] = endsInSpace(text) ? line.trimEnd() : line;
  }
  lines[lines.length - 1] = '';
  return lines.join('\n');
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

export interface TableOptions {
  /** Bold headers (a terminal only: piped output must stay free of escape codes). */
  color: boolean;
  /** -o wide: full ids and every column. */
  wide?: boolean;
  /** false for --no-headers. */
  headers?: boolean;
}

export function printTable(view: View, { color, wide = false, headers = true }: TableOptions): string {
  const data = view.human(wide);
  return data.kind === 'rows' ? rows(data, color, headers) : fields(data);
}
