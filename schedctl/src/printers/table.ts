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

/**
 * Linear in the number of cells: one pass escaping the cells and taking the
 * column widths, one pass writing the padded lines. The last column is not
 * padded, so no line ends in spaces.
 */
function rows(data: Rows, color: boolean): string {
  const columns = data.head.length;
  const count = data.rows.length;
  // Row-major, one entry per body cell.
  const texts = new Array<string>(count * columns);
  const textWidths = new Uint32Array(count * columns);
  const head = data.head.map(cell);
  const headWidths = head.map(displayWidth);
  const widths = [...headWidths];
  let k = 0;
  for (const row of data.rows) {
    for (let i = 0; i < columns; i++, k++) {
      // Empty cells show "-" so columns stay countable with awk.
      let text = row[i] || '-';
      let width: number;
      if (NARROW.test(text)) {
        width = text.length;
      } else {
        text = cell(text);
        width = displayWidth(text);
      }
      texts[k] = text;
      textWidths[k] = width;
      if (width > widths[i]!) widths[i] = width;
    }
  }

  const pad = (n: number): string => ' '.repeat(n);
  const last = columns - 1;
  const lines = new Array<string>(count + 1);
  let line = '';
  for (let i = 0; i < columns; i++) {
    // Colour only on a terminal: piped output must stay free of escape codes.
    line += color ? `${BOLD}${head[i]}${BOLD_OFF}` : head[i];
    if (i < last) line += pad(widths[i]! - headWidths[i]!) + GAP;
  }
  lines[0] = line.trimEnd();
  k = 0;
  for (let r = 0; r < count; r++) {
    line = '';
    for (let i = 0; i < columns; i++, k++) {
      line += texts[k];
      if (i < last) line += pad(widths[i]! - textWidths[k]!) + GAP;
    }
    // A value may end in spaces; the old layout trimmed them too.
    lines[r + 1] = line.trimEnd();
  }
  return `${lines.join('\n')}\n`;
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
