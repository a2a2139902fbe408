// The -o choices, apart from the printers so that the program's options can
// be set up without loading them (and yaml and protobuf with them).
export const OUTPUT_FORMATS = ['table', 'wide', 'json', 'yaml', 'name'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** Whether a format is for people (a table, narrow or wide) rather than data for scripts. */
export const isTable = (format: OutputFormat): boolean => format === 'table' || format === 'wide';
