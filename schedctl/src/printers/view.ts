// What a command hands to a printer: the protobuf message (json/yaml print it
// as is, so scripts get the API's own shape) and a human rendering for tables.
import type { DescMessage, MessageShape } from '@bufbuild/protobuf';

/** A list: one row per item under upper-case column names. */
export interface Rows {
  kind: 'rows';
  head: string[];
  rows: string[][];
}

/** One item: "Label: value" lines, then free-text blocks such as an output tail. */
export interface Fields {
  kind: 'fields';
  fields: Array<[label: string, value: string]>;
  blocks?: Array<{ title: string; text: string }>;
}

export interface View<D extends DescMessage = DescMessage> {
  schema: D;
  message: MessageShape<D>;
  /** Built only when the table format is chosen. */
  human: () => Rows | Fields;
}

/** Ties schema and message together so TypeScript checks they match. */
export function view<D extends DescMessage>(schema: D, message: MessageShape<D>, human: () => Rows | Fields): View {
  return { schema, message, human };
}

export type Printer = (view: View) => string;
