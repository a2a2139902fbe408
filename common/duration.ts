// Durations as operators write them: "500ms", "1s", "2m", "1h30m".
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;

export function parseDuration(text: string): number {
  const trimmed = text.trim();
  if (!/^(\d+(?:\.\d+)?(ms|s|m|h))+$/.test(trimmed)) {
    throw new Error(`invalid duration ${JSON.stringify(text)} (use e.g. 500ms, 10s, 2m, 1h)`);
  }
  let total = 0;
  for (const [, value, unit] of trimmed.matchAll(PART)) total += Number(value) * UNIT_MS[unit!]!;
  return Math.round(total);
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)}s`;
  const m = Math.floor(ms / 60_000);
  if (m < 60) return `${m}m${Math.floor((ms % 60_000) / 1000)}s`;
  return `${Math.floor(m / 60)}h${m % 60}m`;
}
