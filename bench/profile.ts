// Reads a V8 .cpuprofile (node --cpu-prof) and sums self time by function and by module.
// The binaries are esbuild bundles, one file each; esbuild marks where every bundled module
// starts with a `// <path>` comment line, so a function's bundle line names its source file.
//
//   npx tsx bench/profile.ts bench/results/profile/worker-etcd.cpuprofile [top]
import { readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ROOT } from '../test/support/processes.js';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  name: string;
  /** Source module (from the bundle's module comments), or the script. */
  where: string;
  selfMs: number;
  /** Share of the busy (non-idle) time. */
  pct: number;
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  busyMs: number;
  functions: SelfTime[];
  modules: Array<{ module: string; selfMs: number; pct: number }>;
}

/** For each bundle file: the start lines of its modules, ascending, with their paths. */
const moduleIndex = new Map<string, Array<[number, string]>>();
function modulesOf(url: string): Array<[number, string]> {
  let idx = moduleIndex.get(url);
  if (idx) return idx;
  idx = [];
  try {
    const lines = readFileSync(fileURLToPath(url), 'utf8').split('\n');
    lines.forEach((l, i) => {
      const m = /^\/\/ ((?:node_modules|[\w.-]+)\/\S+\.(?:[cm]?[jt]s|json))$/.exec(l);
      if (m) idx!.push([i, m[1]!]);
    });
  } catch {
    // not a file we can read (node internals)
  }
  moduleIndex.set(url, idx);
  return idx;
}

/** Where a frame's code comes from: the bundled module, else the script's name. */
function whereOf(f: CallFrame): string {
  if (!f.url) return '';
  if (f.url.startsWith('file://')) {
    const idx = modulesOf(f.url);
    let lo = 0;
    let hi = idx.length - 1;
    let found = '';
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (idx[mid]![0] <= f.lineNumber) {
        found = idx[mid]![1];
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (found) return found;
    const path = fileURLToPath(f.url);
    return path.startsWith(ROOT) ? path.slice(ROOT.length) : path;
  }
  return f.url;
}

/** A module's group: the npm package, node's internals, or the project's source file. */
function moduleGroup(where: string): string {
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(where);
  if (pkg) return pkg[1]!;
  if (where.startsWith('node:')) return where.replace(/^node:internal\/([^/]+).*$/, 'node:$1');
  return where || '(vm)';
}

export function summarize(file: string, top = 15): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  // Sample i covers the time until sample i+1.
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i + 1] ?? 0;
    self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + Math.max(0, dt));
  }
  const fns = new Map<string, { name: string; where: string; us: number }>();
  const mods = new Map<string, number>();
  let idleUs = 0;
  let totalUs = 0;
  for (const [id, us] of self) {
    const f = byId.get(id)!.callFrame;
    totalUs += us;
    if (f.functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    const name = f.functionName || '(anonymous)';
    // No script: V8's own entries ((program), (garbage collector)) or a native binding (fs open, unlink, ...).
    const where = f.url ? whereOf(f) : name.startsWith('(') ? '' : '(native binding)';
    const key = `${name}\u0000${where}\u0000${f.url}:${f.lineNumber}`;
    const e = fns.get(key) ?? { name, where: where ? `${where}` : '', us: 0 };
    e.us += us;
    fns.set(key, e);
    const g = f.url ? moduleGroup(where) : name.startsWith('(') ? name : `native ${name}`;
    mods.set(g, (mods.get(g) ?? 0) + us);
  }
  const busyUs = totalUs - idleUs;
  const pct = (us: number) => (busyUs > 0 ? (us / busyUs) * 100 : 0);
  return {
    file,
    totalMs: totalUs / 1000,
    busyMs: busyUs / 1000,
    functions: [...fns.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((e) => ({ name: e.name, where: e.where, selfMs: e.us / 1000, pct: pct(e.us) })),
    modules: [...mods.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 12)
      .map(([module, us]) => ({ module, selfMs: us / 1000, pct: pct(us) })),
  };
}

export function printSummary(title: string, s: ProfileSummary, tasks?: number): void {
  const perTask = tasks ? `, ${(s.busyMs / tasks).toFixed(2)} ms per task over ${tasks} tasks` : '';
  console.log(`\n${title}: ${s.file}\nbusy ${s.busyMs.toFixed(0)} ms of ${s.totalMs.toFixed(0)} ms profiled${perTask}`);
  console.log('  (samples of the JS thread when not idle: wall time, so a synchronous call such as spawn(), which waits for fork+exec, counts all its wait)');
  console.log(`  top ${s.functions.length} functions by self time:`);
  for (const f of s.functions) {
    console.log(`  ${f.selfMs.toFixed(1).padStart(8)} ms ${f.pct.toFixed(1).padStart(5)}%  ${f.name}  ${f.where}`);
  }
  console.log('  self time by package / source file:');
  for (const m of s.modules) console.log(`  ${m.selfMs.toFixed(1).padStart(8)} ms ${m.pct.toFixed(1).padStart(5)}%  ${m.module}`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [file, top] = process.argv.slice(2);
  if (!file) {
    console.error('usage: tsx bench/profile.ts FILE.cpuprofile [top]');
    process.exit(2);
  }
  printSummary('profile', summarize(file, Number(top ?? 15)));
}
