import { WorkerSchema, type Isolation } from '../../../proto/gen/schedapi/v1/types_pb.js';
import { TaskState } from '../../../proto/gen/schedapi/v1/types_pb.js';
import { bytes, cores, pairs, shellQuote, timeFromNow, timeWithAge, usedOfTotal, workerStateName } from '../format.js';
import { view } from '../printers/view.js';
import type { Ctx } from './context.js';

/** "enforced (cgroup v1; default max pids 4096)", or why not. */
function limits(iso: Isolation | undefined): string {
  if (!iso) return 'unknown (the worker does not say)';
  if (!iso.cgroups) return `not enforced${iso.limitsNote ? `: ${iso.limitsNote}` : ''}`;
  return `enforced (cgroup ${iso.cgroups}; default max pids ${iso.defaultMaxPids})`;
}

/** `schedctl workers show` (registered in register-workers.ts); `id` may be a prefix or a name. */
export async function workersShow(ctx: Ctx, id: string): Promise<void> {
  const client = ctx.client();
  const [{ worker: w }, { tasks: running }] = await Promise.all([
    client.getWorker({ id }, ctx.unary()),
    client.listTasks({ workerId: id, state: TaskState.SCHEDULED, limit: 1000 }, ctx.unary()),
  ]);
  if (!w) throw new Error(`management node returned no worker for ${JSON.stringify(id)}`);
  const load = w.loadAvg.length > 0 ? w.loadAvg.map((l) => l.toFixed(2)).join(' ') : '-';
  const now = Date.now();
  const hw = w.hardware;
  ctx.print(
    view(WorkerSchema, w, () => ({
      kind: 'fields',
      fields: [
        ['ID', w.id],
        ['Name', w.name],
        ['Address', w.address],
        ['State', workerStateName(w)],
        ['Drain deadline', w.draining ? timeFromNow(w.drainDeadlineUnixMs, now) : ''],
        ['Version', w.version],
        ['Connected', timeWithAge(w.connectedUnixMs, now)],
        ['Last seen', timeWithAge(w.lastSeenUnixMs, now)],
        ['CPU reserved', usedOfTotal(w.allocated?.millicpu ?? 0n, w.capacity?.millicpu ?? 0n, cores)],
        ['Memory reserved', usedOfTotal(w.allocated?.memoryBytes ?? 0n, w.capacity?.memoryBytes ?? 0n, bytes)],
        ['Load average', load],
        ['Memory free', bytes(w.memoryFreeBytes)],
        ['Labels', pairs(w.labels)],
        ['Limits', limits(w.isolation)],
        ['Tasks run as', w.isolation?.runAs || 'the worker\'s own user'],
        ['Allowed users', w.isolation?.allowedUsers.join(', ') ?? ''],
        ['Hostname', hw?.hostname ?? ''],
        ['OS', [hw?.os, hw?.arch].filter(Boolean).join('/')],
        ['Kernel', hw?.kernel ?? ''],
        ['CPUs', hw?.cpuCount ? `${hw.cpuCount}${hw.cpuModel ? ` × ${hw.cpuModel}` : ''}` : ''],
        ['Memory', bytes(hw?.memoryBytes ?? 0n)],
        ['Running tasks', String(w.runningTasks)],
      ],
      blocks: running.length > 0 ? [{ title: 'Running', text: running.map((t) => `${t.id}  ${shellQuote(t.spec?.argv ?? [])}\n`).join('') }] : [],
    })),
  );
}
