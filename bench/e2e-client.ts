// The e2e bench's client, in a process of its own so its CPU is measured apart (bench/e2e.ts).
//
//   node --import tsx bench/e2e-client.ts --manager 127.0.0.1:PORT
//
// Reads one JSON command a line on stdin and answers one JSON line on stdout:
//   {"cmd":"run","n":N,"inFlight":64}  N trivial tasks (/bin/true), inFlight RunTask calls at a
//        time; once all are answered, polls Status until all N are done or dead (Status walks
//        every task: it is polled seldom while many are left, not at all while submitting).
//        → {"event":"ran", ms, submittedMs, done, dead, polls}
//   {"cmd":"latency","n":N}  N times one task alone: RunTask, then WatchTasks until done or dead
//        (what `schedctl tasks run --wait` does). → {"event":"latency", samples: [ms, ...]}
//   {"cmd":"exit"}
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { createServiceClient } from '../common/grpc-service.js';
import { ManagementService, type WatchTasksResponse } from '../proto/gen/schedapi/v1/management_pb.js';
import { TaskState } from '../proto/gen/schedapi/v1/types_pb.js';

const { values } = parseArgs({ options: { manager: { type: 'string', default: '127.0.0.1:7070' } } });
const client = createServiceClient(ManagementService, values.manager, grpc.credentials.createInsecure());
const line = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const SPEC = { argv: ['/bin/true'] };

async function finished(): Promise<{ done: number; dead: number }> {
  const s = await client.status({}, { deadlineMs: 10_000 });
  return { done: s.tasksByState['done'] ?? 0, dead: s.tasksByState['dead'] ?? 0 };
}

async function run(n: number, inFlight: number): Promise<object> {
  const before = await finished();
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next++ < n) await client.runTask({ spec: SPEC }, { deadlineMs: 60_000 });
    }),
  );
  const submittedMs = performance.now() - t0;
  let polls = 0;
  for (;;) {
    const now = await finished();
    polls++;
    const done = now.done - before.done;
    const dead = now.dead - before.dead;
    const elapsed = performance.now() - t0;
    if (done + dead >= n) return { event: 'ran', ms: elapsed, submittedMs, done, dead, polls };
    // Half the time the rest should take at the rate so far: few polls while many tasks are
    // left, the end seen within a few ms.
    const msPerTask = elapsed / Math.max(1, done + dead);
    await sleep(Math.min(500, Math.max(3, ((n - done - dead) * msPerTask) / 2)));
  }
}

function untilFinished(id: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const stream = client.watchTasks({ ids: [id] });
    stream.on('data', (m: WatchTasksResponse) => {
      if (m.task?.state === TaskState.DONE || m.task?.state === TaskState.DEAD) {
        stream.cancel();
        resolve();
      }
    });
    stream.on('error', (err: grpc.ServiceError) => (err.code === grpc.status.CANCELLED ? undefined : reject(err)));
  });
}

async function latency(n: number): Promise<object> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const { task } = await client.runTask({ spec: SPEC }, { deadlineMs: 30_000 });
    await untilFinished(task!.id);
    samples.push(performance.now() - t0);
  }
  return { event: 'latency', samples };
}

async function handle(cmd: { cmd: string; n?: number; inFlight?: number }): Promise<void> {
  try {
    if (cmd.cmd === 'run') line(await run(cmd.n ?? 1000, cmd.inFlight ?? 64));
    else if (cmd.cmd === 'latency') line(await latency(cmd.n ?? 100));
    else if (cmd.cmd === 'exit') {
      client.close();
      process.exit(0);
    } else line({ event: 'error', message: `unknown command ${cmd.cmd}` });
  } catch (err) {
    line({ event: 'error', message: (err as Error).message });
  }
}

// One command at a time, in order.
let queue = Promise.resolve();
createInterface({ input: process.stdin }).on('line', (text) => {
  queue = queue.then(() => handle(JSON.parse(text) as { cmd: string }));
});
process.stdin.on('end', () => process.exit(0));
line({ event: 'ready' });
