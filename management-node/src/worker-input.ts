// What a worker sends is untrusted: every message is checked (and sizes cut
// down) here, before it touches the cluster's state or the store. A refusal
// names the field, so the operator of a misbehaving worker can tell why.
import type { Finished, Hello, LogChunk } from '../../proto/gen/schedapi/v1/worker_pb.js';
import { InvalidArgumentError } from '../../common/errors.js';
import { checkLabels } from '../../common/labels.js';
import { MAX_ALLOWED_USERS, userProblem } from '../../common/run-user.js';
import { isValidName } from './worker-names.js';

/** 1-128 of [A-Za-z0-9._-], not starting with ".": ids become store keys and file names. */
const ID = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;
/** Bigger than any machine sold: 1M cores and 1 PiB of memory. */
export const MAX_MILLICPU = 1_000_000_000n;
export const MAX_MEMORY_BYTES = 2n ** 50n;
const MAX_INFO_STRING = 256;
/** A thousand years of one core: more CPU time than any attempt has. */
const MAX_CPU_TIME_US = 1000n * 365n * 86_400n * 1_000_000n;
/** Attempts a Hello may list as running. */
export const MAX_RUNNING = 100_000;
/** What the manager keeps of a task's output and of an error text. */
export const TAIL_LIMIT = 4096;
export const ERROR_LIMIT = 4096;
const SIGNAL_LIMIT = 32;
/** A log chunk is at most 64 KiB (the worker's read size); anything larger is refused. */
export const LOG_CHUNK_LIMIT = 256 * 1024;

export const isValidId = (id: string): boolean => ID.test(id);

function checkId(field: string, id: string): void {
  if (!ID.test(id)) throw new InvalidArgumentError(field, `must be 1-128 of [A-Za-z0-9._-], not starting with ".", got ${preview(id)}`);
}

function checkString(field: string, s: string, max: number): void {
  if (s.length > max) throw new InvalidArgumentError(field, `is ${s.length} characters; at most ${max} allowed`);
}

function checkUser(field: string, name: string): void {
  const problem = userProblem(name);
  if (problem) throw new InvalidArgumentError(field, problem);
}

function checkAmount(field: string, v: bigint, max: bigint): void {
  if (v < 0n || v > max) throw new InvalidArgumentError(field, `must be between 0 and ${max}, got ${v}`);
}

/** checkHello throws InvalidArgumentError naming the first field of a Hello that is out of bounds. */
export function checkHello(h: Hello): void {
  checkId('hello.worker_id', h.workerId);
  checkString('hello.token', h.token, 1024);
  checkString('hello.version', h.version, 64);
  if (h.name && !isValidName(h.name)) throw new InvalidArgumentError('hello.name', `must be 1-63 of [A-Za-z0-9._-], got ${preview(h.name)}`);
  const c = h.capacity;
  if (!c) throw new InvalidArgumentError('hello.capacity', 'is required');
  checkAmount('hello.capacity.millicpu', c.millicpu, MAX_MILLICPU);
  checkAmount('hello.capacity.memory_bytes', c.memoryBytes, MAX_MEMORY_BYTES);
  checkLabels('hello.labels', h.labels);
  const hw = h.hardware;
  if (hw) {
    for (const [name, value] of [['hostname', hw.hostname], ['os', hw.os], ['arch', hw.arch], ['kernel', hw.kernel], ['cpu_model', hw.cpuModel]] as const) {
      checkString(`hello.hardware.${name}`, value, MAX_INFO_STRING);
    }
    checkAmount('hello.hardware.memory_bytes', hw.memoryBytes, MAX_MEMORY_BYTES);
  }
  const iso = h.isolation;
  if (iso) {
    if (!['', 'v1', 'v2'].includes(iso.cgroups)) throw new InvalidArgumentError('hello.isolation.cgroups', `must be "v1", "v2" or empty, got ${preview(iso.cgroups)}`);
    checkString('hello.isolation.limits_note', iso.limitsNote, MAX_INFO_STRING);
    if (iso.runAs) checkUser('hello.isolation.run_as', iso.runAs);
    if (iso.allowedUsers.length > MAX_ALLOWED_USERS) {
      throw new InvalidArgumentError('hello.isolation.allowed_users', `lists ${iso.allowedUsers.length} users; at most ${MAX_ALLOWED_USERS} allowed`);
    }
    iso.allowedUsers.forEach((u, i) => checkUser(`hello.isolation.allowed_users[${i}]`, u));
  }
  if (h.running.length > MAX_RUNNING) throw new InvalidArgumentError('hello.running', `lists ${h.running.length} attempts; at most ${MAX_RUNNING} allowed`);
  h.running.forEach((ta, i) => checkId(`hello.running[${i}].task_id`, ta.taskId));
}

/** boundFinished cuts a result down to what the manager stores: the last bytes of output, a bounded error. */
export function boundFinished(f: Finished): Finished {
  if (f.stdoutTail.byteLength > TAIL_LIMIT) f.stdoutTail = f.stdoutTail.slice(-TAIL_LIMIT);
  if (f.stderrTail.byteLength > TAIL_LIMIT) f.stderrTail = f.stderrTail.slice(-TAIL_LIMIT);
  if (f.error.length > ERROR_LIMIT) f.error = `${f.error.slice(0, ERROR_LIMIT)}… (cut)`;
  if (f.signal.length > SIGNAL_LIMIT) f.signal = f.signal.slice(0, SIGNAL_LIMIT);
  // Figures only: one out of range is dropped, not a reason to lose the result.
  if (f.peakMemoryBytes < 0n || f.peakMemoryBytes > MAX_MEMORY_BYTES) f.peakMemoryBytes = 0n;
  if (f.cpuTimeUs < 0n || f.cpuTimeUs > MAX_CPU_TIME_US) f.cpuTimeUs = 0n;
  return f;
}

export function checkLogChunk(c: LogChunk): void {
  if (c.data.byteLength > LOG_CHUNK_LIMIT) throw new InvalidArgumentError('log_chunk.data', `is ${c.data.byteLength} bytes; at most ${LOG_CHUNK_LIMIT} allowed`);
  checkString('log_chunk.error', c.error, ERROR_LIMIT);
}

function preview(s: string): string {
  return JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);
}
