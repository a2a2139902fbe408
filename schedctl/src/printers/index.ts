// One printer per output format, chosen by -o.
import { printJson } from './json.js';
import { printNames } from './name.js';
import { printTable } from './table.js';
import type { OutputFormat } from './formats.js';
import type { Printer } from './view.js';
import { printYaml } from './yaml.js';

export { OUTPUT_FORMATS, isTable, type OutputFormat } from './formats.js';

/** `color`: bold headers (a terminal); `headers`: false for --no-headers. */
export function printerFor(format: OutputFormat, color: boolean, headers = true): Printer {
  switch (format) {
    case 'json':
      return printJson;
    case 'yaml':
      return printYaml;
    case 'name':
      return printNames;
    case 'table':
    case 'wide':
      return (v) => printTable(v, { color, headers, wide: format === 'wide' });
  }
}

export { view, idsIn, type View, type Rows, type Fields } from './view.js';
