// What a command hands to a printer: the protobuf message (json/yaml print it
// as is, so scripts get the API's own shape), a human rendering for tables,
// and the ids -o name prints.
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
  /** Built only when a table is printed; `wide` (-o wide) asks for full ids and every column. */
  human: (wide: boolean) => Rows | Fields;
  /** The full ids -o name prints, one a line. */
  names: () => string[];
  /** Top-level fields left out of -o json and -o yaml (e.g. an empty next_page_token that means nothing there). */
  omit?: readonly string[];
}

/**
 * Ids in a message, for -o name when the command names none: its own `id`, or
 * those of its `task`, `worker`, `tasks`, `workers` (the shapes of every
 * ManagementService answer), or of a oneof's value (WatchEvents).
 */
export function idsIn(message: unknown): string[] {
  const m = message as Record<string, unknown>;
  const idOf = (o: unknown): string[] => {
    const id = (o as { id?: unknown } | undefined)?.id;
    return typeof id === 'string' && id !== '' ? [id] : [];
  };
  if (idOf(m).length > 0) return idOf(m);
  for (const key of ['tasks', 'workers']) {
    const list = m[key];
    if (Array.isArray(list) && list.length > 0) return list.flatMap(idOf);
  }
  for (const key of ['task', 'worker']) if (idOf(m[key]).length > 0) return idOf(m[key]);
  const oneof = m['object'] as { value?: unknown } | undefined;
  return idOf(oneof?.value);
}

/** Ties schema and message together so TypeScript checks they match; `names` defaults to idsIn(message). */
export function view<D extends DescMessage>(
  schema: D,
  message: MessageShape<D>,
  human: (wide: boolean) => Rows | Fields,
  more: { names?: () => string[]; omit?: readonly string[] } = {},
): View {
  return { schema, message, human, names: more.names ?? (() => idsIn(message)), ...(more.omit ? { omit: more.omit } : {}) };
}

export type Printer = (view: View) => string;
