// One printer per output format, chosen by -o.
import { printJson } from './json.js';
import { printTable } from './table.js';
import type { OutputFormat } from './formats.js';
import type { Printer } from './view.js';
import { printYaml } from './yaml.js';

export { OUTPUT_FORMATS, type OutputFormat } from './formats.js';

export function printerFor(format: OutputFormat, isTTY: boolean): Printer {
  switch (format) {
    case 'json':
      return printJson;
    case 'yaml':
      return printYaml;
    case 'table':
      return (v) => printTable(v, isTTY);
  }
}

export { view, type View, type Rows, type Fields } from './view.js';
