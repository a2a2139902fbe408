// Rules about a task that need no state: what a valid spec is, what it reserves,
// the order of its timestamps, and how long a cut-off worker keeps its tasks.
import { create, toBinary } from '@bufbuild/protobuf';
import { ResourcesSchema, TaskSpecSchema, type Task, type TaskSpec } from '../../proto/gen/schedapi/v1/types_pb.js';
import { InvalidArgumentError } from '../../common/errors.js';
import { checkLabels } from '../../common/labels.js';
import { userProblem } from '../../common/run-user.js';
import type { Resources } from './scheduler/scheduler.js';

/** A quarter core and 64 MiB, like a small Nomad task. */
export const DEFAULT_TASK_RESOURCES: Resources = { millicpu: 250, memoryBytes: 64 * 1024 * 1024 };

/** requestOf is the spec's resource request with the manager's defaults for what it leaves out. */
export function requestOf(spec: TaskSpec, d: Resources): TaskSpec['resources'] {
  return create(ResourcesSchema, {
    millicpu: spec.resources?.millicpu || BigInt(d.millicpu),
    memoryBytes: spec.resources?.memoryBytes || BigInt(d.memoryBytes),
  });
}

/** resourcesOf is what a task reserves on its worker, in the placement core's terms. */
export function resourcesOf(task: Task, d: Resources): Resources {
  const r = task.spec?.resources;
  return { millicpu: Number(r?.millicpu || d.millicpu), memoryBytes: Number(r?.memoryBytes || d.memoryBytes) };
}

/**
 * orphanTimeoutMs is how long a worker that hears nothing from the manager keeps its tasks
 * before it kills them (Welcome.orphan_timeout_ms): shorter than the reconnect grace after which
 * the manager places them again, so the old attempt is dead before a new one can start.
 */
export function orphanTimeoutMs(reconnectGraceMs: number): number {
  return Math.max(Math.floor(reconnectGraceMs / 2), reconnectGraceMs - 3000);
}

/** orderTimes keeps a task's timestamps in order (created ≤ scheduled ≤ started ≤ finished) across clocks. */
export function orderTimes(t: Task): void {
  if (t.scheduledUnixMs && t.scheduledUnixMs < t.createdUnixMs) t.scheduledUnixMs = t.createdUnixMs;
  if (t.startedUnixMs && t.startedUnixMs < t.scheduledUnixMs) t.startedUnixMs = t.scheduledUnixMs;
  const floor = t.startedUnixMs || t.scheduledUnixMs || t.createdUnixMs;
  if (t.finishedUnixMs && t.finishedUnixMs < floor) t.finishedUnixMs = floor;
}

/** Linux's highest pid_max: a pids limit above it limits nothing. */
const MAX_PIDS = 4_194_304;

/** A task record must fit many to a store txn (see MAX_TXN_BYTES). */
const MAX_SPEC_BYTES = 64 * 1024;

export function validateSpec(spec: TaskSpec): void {
  const size = toBinary(TaskSpecSchema, spec).byteLength;
  if (size > MAX_SPEC_BYTES) throw new InvalidArgumentError('spec', `is ${size} bytes; at most ${MAX_SPEC_BYTES} allowed (argv, env and cwd together)`);
  if (spec.argv.length === 0 || !spec.argv[0]) throw new InvalidArgumentError('spec.argv', 'must name a command to run');
  spec.argv.forEach((a, i) => {
    if (a.includes('\0')) throw new InvalidArgumentError(`spec.argv[${i}]`, 'must not contain NUL bytes');
  });
  const r = spec.resources;
  if (r && r.millicpu < 0n) throw new InvalidArgumentError('spec.resources.millicpu', 'must not be negative');
  if (r && r.memoryBytes < 0n) throw new InvalidArgumentError('spec.resources.memory_bytes', 'must not be negative');
  if (!['', 'binpack', 'spread'].includes(spec.strategy)) {
    throw new InvalidArgumentError('spec.strategy', `must be "binpack" or "spread", not ${JSON.stringify(spec.strategy)}`);
  }
  checkLabels('spec.constraints', spec.constraints);
  const userBad = spec.user ? userProblem(spec.user) : undefined;
  if (userBad) throw new InvalidArgumentError('spec.user', userBad);
  if (spec.maxPids > MAX_PIDS) throw new InvalidArgumentError('spec.max_pids', `must be at most ${MAX_PIDS} (Linux's pid_max), got ${spec.maxPids}`);
  if (spec.cwd.length > 4096) throw new InvalidArgumentError('spec.cwd', `is ${spec.cwd.length} characters; at most 4096 allowed`);
  for (const key of Object.keys(spec.env)) {
    if (!key || key.includes('=') || key.includes('\0')) {
      throw new InvalidArgumentError(`spec.env[${JSON.stringify(key)}]`, 'variable names must be non-empty without "=" or NUL');
    }
  }
}
