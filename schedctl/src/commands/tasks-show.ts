import type { Command } from 'commander';
import { TaskSchema, TaskState, type Task } from '../../../proto/gen/sched/v1/types_pb.js';
import { pairs, shellQuote, taskDuration, taskStateName, timeWithAge } from '../format.js';
import { view, type Fields } from '../printers/index.js';
import type { Ctx } from './context.js';

const utf8 = new TextDecoder('utf-8', { fatal: false });

export function taskFields(t: Task, now: number): Fields {
  const finished = t.state === TaskState.DONE;
  const blocks: NonNullable<Fields['blocks']> = [];
  if (t.stdoutTail.length) blocks.push({ title: 'Stdout (tail)', text: utf8.decode(t.stdoutTail) });
  if (t.stderrTail.length) blocks.push({ title: 'Stderr (tail)', text: utf8.decode(t.stderrTail) });
  return {
    kind: 'fields',
    fields: [
      ['ID', t.id],
      ['State', taskStateName(t.state)],
      ['Command', shellQuote(t.spec?.argv ?? [])],
      ['Cwd', t.spec?.cwd ?? ''],
      ['Env', pairs(t.spec?.env ?? {})],
      ['Worker', t.workerId],
      ['Attempt', t.attempt ? String(t.attempt) : ''],
      ['PID', t.pid ? String(t.pid) : ''],
      // exit_code is 0 by default in proto3: only meaningful once the task is done.
      ['Exit code', finished ? String(t.exitCode) : ''],
      ['Signal', t.signal],
      ['Dead reason', t.deadReason],
      ['Error', t.error],
      ['Created', timeWithAge(t.createdUnixMs, now)],
      ['Scheduled', timeWithAge(t.scheduledUnixMs, now)],
      ['Started', timeWithAge(t.startedUnixMs, now)],
      ['Finished', timeWithAge(t.finishedUnixMs, now)],
      ['Duration', taskDuration(t, now)],
    ],
    blocks,
  };
}

export function registerTasksShow(tasks: Command, ctx: Ctx): void {
  tasks
    .command('show')
    .description('shows one task: command, state, worker, times, exit code and the tail of its output')
    .argument('<id>', 'task id (printed by tasks run, listed by tasks ls)')
    .action(async (id: string) => {
      const { task } = await ctx.client().getTask({ id }, ctx.unary());
      if (!task) throw new Error(`management node returned no task for ${JSON.stringify(id)}`);
      const now = Date.now();
      ctx.print(view(TaskSchema, task, () => taskFields(task, now)));
    });
}
