// Sizes as operators write them: memory as "512Mi", "4Gi", "2G" or "1000B"; CPU
// as cores ("0.5", "2") or millicpu ("500m"). Shared by the worker's config
// and schedctl's flags so both read the same quantities the same way.

const MEMORY_UNITS: Record<string, number> = {
  b: 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12, ki: 2 ** 10, mi: 2 ** 20, gi: 2 ** 30, ti: 2 ** 40,
};
const MEMORY = /^(\d+)\s*(?:([kKmMgGtT]i?)[bB]?|[bB])$/;
const NUMBER = /^(\d+(?:\.\d*)?|\.\d+)$/;
const FRACTION = /^(\d*\.\d+)\s*([kKmMgGtT]i?)[bB]?$/;

/**
 * Bytes from a whole number with a unit: "512Mi" (binary), "2G" (decimal),
 * "1000B". Units are case-insensitive and a trailing B is allowed ("512MB").
 * A bare number is refused (bytes? megabytes?), in a flag as in a config, and
 * so is a fraction ("1.5Gi": the error offers 1536Mi). Throws unless the
 * result is a positive whole number of bytes that a double holds exactly.
 */
export function parseMemorySize(text: string): number {
  const s = text.trim();
  const quoted = JSON.stringify(text);
  if (NUMBER.test(s)) throw new Error(`invalid memory size ${quoted}: add a unit, e.g. 512Mi, 2Gi or 1000B (sizes are whole numbers with a unit)`);
  const fraction = FRACTION.exec(s);
  if (fraction) {
    const bytes = Number(fraction[1]) * MEMORY_UNITS[fraction[2]!.toLowerCase()]!;
    const exact = Number.isSafeInteger(bytes) && bytes > 0 ? formatMemorySize(bytes) : '';
    const example = /[A-Za-z]$/.test(exact) ? exact : '512Mi';
    throw new Error(`invalid memory size ${quoted}: sizes are whole numbers with a unit, e.g. ${example}`);
  }
  const m = MEMORY.exec(s);
  const bytes = m ? Number(m[1]) * MEMORY_UNITS[(m[2] ?? 'b').toLowerCase()]! : 0;
  if (!(bytes > 0) || !Number.isSafeInteger(bytes)) {
    throw new Error(`invalid memory size ${quoted} (use a whole number with a unit, e.g. 512Mi, 4Gi or 1000B)`);
  }
  return bytes;
}

/** parseMemorySize of a config's value: YAML gives `memory: 1024` as a number, refused as "1024" is. */
export function parseMemoryValue(value: string | number): number {
  return parseMemorySize(String(value));
}

const CORES = /^(\d+(?:\.\d+)?|\.\d+)$/;
const MILLICPU = /^(\d+)m$/;

/**
 * Millicpu from cores ("0.5" → 500, "2" → 2000) or millicpu ("500m" → 500).
 * Throws unless the result is a positive whole number of millicpu: "0.0005"
 * asks for finer than 1m.
 */
export function parseMillicpu(text: string): number {
  const s = text.trim();
  const milli = MILLICPU.exec(s);
  let value = Number.NaN;
  if (milli) value = Number(milli[1]);
  else if (CORES.test(s)) {
    const exact = Number(s) * 1000;
    value = Math.round(exact);
    // Floating point: 0.001 * 1000 is not exactly 1, so allow a little slack.
    if (Math.abs(exact - value) > 1e-6) value = Number.NaN;
  }
  if (!(value > 0) || !Number.isSafeInteger(value)) {
    throw new Error(`invalid CPU ${JSON.stringify(text)} (use cores such as 0.5 or 2, or millicpu such as 500m)`);
  }
  return value;
}

const BINARY_UNITS: Array<[string, number]> = [['Ti', 2 ** 40], ['Gi', 2 ** 30], ['Mi', 2 ** 20], ['Ki', 2 ** 10]];

/** Bytes in the largest binary unit that divides them exactly (1Ki, 64Mi, 1536Mi), else plain bytes. */
export function formatMemorySize(bytes: number): string {
  for (const [unit, size] of BINARY_UNITS) if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  return String(bytes);
}

/** An allowed range of a size setting, inclusive, in bytes. */
export interface SizeRange {
  min: number;
  max: number;
}

/** Why bytes is outside [min, max] ("must be between 1Ki and 1Ti, got 12"), or undefined when it is inside. */
export function memoryRangeError(bytes: number, { min, max }: SizeRange): string | undefined {
  if (bytes >= min && bytes <= max) return undefined;
  return `must be between ${formatMemorySize(min)} and ${formatMemorySize(max)}, got ${formatMemorySize(bytes)}`;
}
