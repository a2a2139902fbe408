// The spawn baseline's fresh process: plain JavaScript run by node itself (no loader, nothing
// imported but node:), so its heap is what a worker's would be at start, not the bench's.
//
//   node bench/spawn-child.mjs <spawns> <in-flight>
//
// Spawns /bin/true a few times to warm up, prints {"event":"ready"}, waits for a line on stdin
// (so two of them can start together), then runs <spawns> spawns, <in-flight> at a time, and
// prints {"event":"done", ms, cpuMs, selfMs, childMs, machineMs}: wall time, this process's
// CPU with its reaped children (the /bin/true processes), each part, and the machine's busy
// time over the same window (every process on it), all in milliseconds.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const spawns = Number(process.argv[2] ?? 500);
const inFlight = Number(process.argv[3] ?? 16);
const tick = 1000 / Number(process.env.CLK_TCK || 100);

function own() {
  const text = readFileSync('/proc/self/stat', 'utf8');
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ').map(Number);
  return { self: (f[11] + f[12]) * tick, children: (f[13] + f[14]) * tick };
}

function machine() {
  const v = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number);
  return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) * tick;
}

/** One bare spawn: the cheapest way node runs a program (no pipes), resolved on exit (reaped). */
function one() {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/true', [], { stdio: 'ignore' });
    child.on('error', reject);
    child.on('exit', resolve);
  });
}

async function run(n) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(inFlight, n) }, async () => {
      while (next++ < n) await one();
    }),
  );
}

const line = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

await run(Math.min(20, spawns));
line({ event: 'ready' });
await new Promise((resolve) => process.stdin.once('data', resolve));
process.stdin.pause();
const c0 = own();
const m0 = machine();
const t0 = performance.now();
await run(spawns);
const ms = performance.now() - t0;
const c1 = own();
const m1 = machine();
line({
  event: 'done',
  spawns,
  inFlight,
  ms,
  selfMs: c1.self - c0.self,
  childMs: c1.children - c0.children,
  cpuMs: c1.self - c0.self + c1.children - c0.children,
  machineMs: m1 - m0,
});
