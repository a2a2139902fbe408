// The task file of `tasks run -f FILE`: a list of task specs, each with the
// flags of `tasks run` as fields, in YAML or JSON (YAML reads both). It also
// reads go-schedule's own file as is: `tasks: [{cmd: sleep, params: ["30"]}]`.
// Every entry is checked before anything is submitted; an error names the
// file, the entry (from 1) and the field: "tasks.yaml: entry 3: mem: ...".
import { USER_NAME, USER_NAME_RULE } from '../../common/run-user.js';
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { parse } from 'yaml';
import { z } from 'zod';
import { MAX_UINT32_MS } from '../../common/duration.js';
import { ConfigError, durationIn, memory } from '../../common/config.js';
import { parseMillicpu } from '../../common/size.js';
import type { RunOptions } from './commands/tasks-run.js';
import { MAX_COUNT } from './flags.js';
import { MAX_DELAY_MS, parseTime, splitIds } from './gate-flags.js';

/** Most entries in one file (each is a RunTask; --count inside an entry makes more). */
export const MAX_ENTRIES = 10_000;
/** Largest file read: far more than MAX_ENTRIES entries need, small enough to read at once. */
const MAX_FILE_BYTES = 16 << 20;
/** The most problems one error lists (the first few tell what is wrong). */
const MAX_PROBLEMS = 5;

/** YAML may give a number or a boolean where a string is meant (PORT: 8080): taken as written. */
const text = z.union([z.string(), z.number(), z.boolean()]).transform(String);
const pairs = z.record(z.string().min(1), text);

const cpu = z.union([z.string(), z.number().positive()]).transform((value, ctx) => {
  try {
    return parseMillicpu(String(value));
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

const timeLimit = () => durationIn(0, MAX_UINT32_MS);

/** Run after these tasks or groups: one id, a comma list, or a list of them. */
const ids = z.union([text, z.array(text)]).transform((value, ctx) => {
  try {
    return (Array.isArray(value) ? value : [value]).flatMap(splitIds);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

/** at: an ISO 8601 time with its zone. */
const at = z.string().transform((value, ctx) => {
  try {
    return parseTime(value);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

const entrySchema = z
  .strictObject({
    argv: z.array(text).min(1, 'name the program and its arguments').optional(),
    cmd: text.pipe(z.string().min(1, 'must not be empty')).optional(),
    params: z.array(text).optional(),
    env: pairs.optional(),
    cwd: z.string().optional(),
    cpu: cpu.optional(),
    mem: memory().optional(),
    labels: pairs.optional(),
    priority: z.number().int().min(-(2 ** 31)).max(2 ** 31 - 1).optional(),
    user: z.string().regex(USER_NAME, USER_NAME_RULE).optional(),
    max_pids: z.number().int().min(1).max(4_194_304).optional(),
    retries: z.number().int().min(0).max(2 ** 32 - 1).optional(),
    strategy: z.enum(['spread', 'binpack']).optional(),
    schedule_timeout: timeLimit().optional(),
    timeout: timeLimit().optional(),
    shell: z.boolean().optional(),
    count: z.number().int().min(1).max(MAX_COUNT).optional(),
    max_parallel: z.number().int().min(0).max(2 ** 32 - 1).optional(),
    after_ok: ids.optional(),
    after_any: ids.optional(),
    after_failed: ids.optional(),
    at: at.optional(),
    in: durationIn(0, MAX_DELAY_MS).optional(),
  })
  .superRefine((e, ctx) => {
    if ((e.argv === undefined) === (e.cmd === undefined)) ctx.addIssue({ code: 'custom', message: 'give argv (a list) or cmd (a program, with params), not both', path: ['argv'] });
    if (e.at !== undefined && e.in !== undefined) ctx.addIssue({ code: 'custom', message: 'give at (a time) or in (a delay), not both', path: ['at'] });
    if (e.argv && e.params) ctx.addIssue({ code: 'custom', message: 'params go with cmd; with argv, put them in the list', path: ['params'] });
    if (e.cmd && !e.params && !e.shell && /\s/.test(e.cmd.trim())) {
      ctx.addIssue({ code: 'custom', message: 'is one program name; give its arguments in params, or set shell: true for a command line', path: ['cmd'] });
    }
  });

type Entry = z.output<typeof entrySchema>;

/** One entry, as tasks run's flags would say it (commands/tasks-run.ts specFromOptions). */
export type BatchEntry = Omit<RunOptions, 'count' | 'wait' | 'idempotencyKey' | 'file'> & { argv: string[]; count?: number };

function toBatchEntry(e: Entry): BatchEntry {
  const out: BatchEntry = { argv: e.argv ?? [e.cmd!, ...(e.params ?? [])] };
  if (e.env) out.env = e.env;
  if (e.cwd !== undefined) out.cwd = e.cwd;
  if (e.cpu !== undefined) out.cpu = e.cpu;
  if (e.mem !== undefined) out.mem = e.mem;
  if (e.labels) out.label = e.labels;
  if (e.priority !== undefined) out.priority = e.priority;
  if (e.user !== undefined) out.user = e.user;
  if (e.max_pids !== undefined) out.maxPids = e.max_pids;
  if (e.retries !== undefined) out.retries = e.retries;
  if (e.strategy === 'spread') out.spread = true;
  if (e.strategy === 'binpack') out.binpack = true;
  if (e.schedule_timeout !== undefined) out.scheduleTimeout = e.schedule_timeout;
  if (e.timeout !== undefined) out.timeout = e.timeout;
  if (e.shell !== undefined) out.shell = e.shell;
  if (e.count !== undefined) out.count = e.count;
  if (e.max_parallel !== undefined) out.maxParallel = e.max_parallel;
  if (e.after_ok) out.after = e.after_ok;
  if (e.after_any) out.afterAny = e.after_any;
  if (e.after_failed) out.afterFailed = e.after_failed;
  if (e.at !== undefined) out.at = e.at;
  if (e.in !== undefined) out.in = e.in;
  return out;
}

const fileSchema = z.union([z.array(z.unknown()), z.strictObject({ tasks: z.array(z.unknown()) })]);

/** The entries of a task file's text; `name` is how errors name the file. */
export function parseBatch(source: string, name: string): BatchEntry[] {
  let doc: unknown;
  try {
    doc = parse(source);
  } catch (err) {
    throw new ConfigError(`${name}: ${(err as Error).message.split('\n')[0]}`);
  }
  const top = fileSchema.safeParse(doc);
  if (!top.success) throw new ConfigError(`${name}: expected a list of tasks, or tasks: [...] (see examples/tasks.yaml)`);
  const raw = Array.isArray(top.data) ? top.data : top.data.tasks;
  if (raw.length === 0) throw new ConfigError(`${name}: no tasks in the file`);
  if (raw.length > MAX_ENTRIES) throw new ConfigError(`${name}: ${raw.length} entries; at most ${MAX_ENTRIES} per file`);
  const problems: string[] = [];
  const entries: BatchEntry[] = [];
  raw.forEach((item, i) => {
    const r = entrySchema.safeParse(item);
    if (r.success) entries.push(toBatchEntry(r.data));
    else for (const issue of r.error.issues) problems.push(`${name}: entry ${i + 1}: ${issue.path.length > 0 ? `${issue.path.join('.')}: ` : ''}${describe(issue)}`);
  });
  if (problems.length > 0) {
    const more = problems.length > MAX_PROBLEMS ? `\n(and ${problems.length - MAX_PROBLEMS} more)` : '';
    throw new ConfigError(problems.slice(0, MAX_PROBLEMS).join('\n') + more);
  }
  return entries;
}

/** zod's words, with the keys an unknown field names. */
function describe(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}`;
  return issue.message;
}

/** Reads and checks a task file ("-" is stdin). */
export function readBatchFile(path: string): BatchEntry[] {
  const name = path === '-' ? 'stdin' : path;
  let source: string;
  try {
    if (path !== '-' && statSync(path).size > MAX_FILE_BYTES) throw new Error(`larger than ${MAX_FILE_BYTES >> 20} MiB`);
    const data = readFileSync(path === '-' ? 0 : path);
    if (data.length > MAX_FILE_BYTES) throw new Error(`larger than ${MAX_FILE_BYTES >> 20} MiB`);
    source = data.toString('utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ConfigError(`${name}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  }
  return parseBatch(source, name);
}

/**
 * The idempotency key of entry `index` of a run keyed `runKey`: the same run
 * key and file give the same keys, so a rerun creates nothing twice. Within
 * the 128 characters RunTask allows: a long run key is cut and a digest of it added.
 */
export function entryKey(runKey: string, index: number): string {
  const suffix = `:${index}`;
  if (runKey.length + suffix.length <= 128) return runKey + suffix;
  const digest = createHash('sha256').update(runKey).digest('hex').slice(0, 16);
  return `${runKey.slice(0, 128 - suffix.length - digest.length - 1)}.${digest}${suffix}`;
}
