// The bench's one table: each row a JSON key of bench/results/latest.json, its value, and
// its target with met / NOT MET (or "baseline" for what the others are ratios of).

export interface Target {
  op: '>=' | '<=' | '<';
  limit: number;
  /** How the target reads, e.g. "≥ 0.8 × spawn_fresh_per_s". */
  text: string;
}

export interface Row {
  key: string;
  value: number | undefined;
  unit: string;
  target?: Target | undefined;
  baseline?: boolean;
  note?: string | undefined;
}

export function fmt(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return 'n/a';
  const a = Math.abs(v);
  const d = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3;
  return v.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

export function met(value: number | undefined, t: Target): boolean | undefined {
  if (value === undefined || !Number.isFinite(value)) return undefined;
  return t.op === '>=' ? value >= t.limit : t.op === '<=' ? value <= t.limit : value < t.limit;
}

export class Table {
  readonly rows: Array<Row | string> = [];

  section(title: string): void {
    this.rows.push(title);
  }

  add(row: Row): void {
    this.rows.push(row);
  }

  /** { key: met } for every row with a target. */
  verdicts(): Record<string, boolean | null> {
    const out: Record<string, boolean | null> = {};
    for (const r of this.rows) if (typeof r !== 'string' && r.target) out[r.key] = met(r.value, r.target) ?? null;
    return out;
  }

  print(): void {
    const cells = this.rows.map((r) => {
      if (typeof r === 'string') return r;
      const status = r.baseline ? 'baseline' : r.target ? (met(r.value, r.target) === undefined ? 'no figure' : met(r.value, r.target) ? 'met' : 'NOT MET') : '';
      return [r.key, fmt(r.value), r.unit, r.target?.text ?? '', status, r.note ?? ''];
    });
    const grid = cells.filter((c): c is string[] => typeof c !== 'string');
    const width = [0, 1, 2, 3, 4].map((i) => Math.max(...grid.map((c) => c[i]!.length), ['key', 'value', 'unit', 'target', 'status'][i]!.length));
    const line = (c: string[]) =>
      c
        .map((s, i) => (i === 5 ? s : i === 1 ? s.padStart(width[i]!) : s.padEnd(width[i]!)))
        .join('  ')
        .trimEnd();
    console.log(line(['key', 'value', 'unit', 'target', 'status', 'what']));
    for (const c of cells) console.log(typeof c === 'string' ? `\n── ${c}` : line(c));
    const v = Object.values(this.verdicts());
    console.log(`\ntargets met: ${v.filter((x) => x === true).length} of ${v.length}${v.includes(null) ? ` (${v.filter((x) => x === null).length} without a figure)` : ''}`);
  }
}
