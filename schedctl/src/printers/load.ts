// The printer of one -o format, loaded when a command runs: a table needs
// neither yaml (0.26 MB of code to read and compile) nor protobuf's JSON
// writer, so those are loaded for -o yaml and -o json only; the table printer
// is small and the default, so it comes along. index.ts keeps them all at
// hand for the tests.
import type { OutputFormat } from './formats.js';
import { printNames } from './name.js';
import { printTable } from './table.js';
import type { Printer } from './view.js';

export async function loadPrinter(format: OutputFormat, color: boolean, headers = true): Promise<Printer> {
  switch (format) {
    case 'json':
      return (await import('./json.js')).printJson;
    case 'yaml':
      return (await import('./yaml.js')).printYaml;
    case 'name':
      return printNames;
    case 'table':
    case 'wide':
      return (v) => printTable(v, { color, headers, wide: format === 'wide' });
  }
}
