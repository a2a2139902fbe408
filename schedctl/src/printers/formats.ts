// The -o choices, apart from the printers so that the program's options can
// be set up without loading them (and yaml and protobuf with them).
export const OUTPUT_FORMATS = ['table', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];
