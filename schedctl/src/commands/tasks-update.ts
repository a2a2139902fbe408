// `schedctl tasks update` (registered in register-tasks.ts): UpdateTask. A pending
// task's priority, resources and constraints (the manager refuses a task that is no
// longer pending, FAILED_PRECONDITION); --max-parallel changes the
// task's whole group. Prints the task as changed, as tasks show does.
import type { Command } from 'commander';
import { create } from '@bufbuild/protobuf';
import { ResourcesSchema, TaskSchema } from '../../../proto/gen/schedapi/v1/types_pb.js';
import { view } from '../printers/view.js';
import type { Ctx } from './context.js';
import { taskFields } from './tasks-show.js';

export interface UpdateOptions {
  priority?: number;
  cpu?: number;
  mem?: number;
  label?: Record<string, string>;
  /** --no-labels sets this false. */
  labels?: boolean;
  maxParallel?: number;
}

export async function tasksUpdate(ctx: Ctx, id: string, opts: UpdateOptions, cmd: Command): Promise<void> {
  const dropLabels = opts.labels === false;
  if (dropLabels && opts.label) cmd.error('error: give --label or --no-labels, not both', { code: 'commander.conflictingOption' });
  const resources = opts.cpu !== undefined || opts.mem !== undefined;
  if (opts.priority === undefined && !resources && !opts.label && !dropLabels && opts.maxParallel === undefined) {
    cmd.error('error: name something to change: --priority, --cpu, --mem, --label, --no-labels or --max-parallel', { code: 'commander.missingArgument' });
  }
  const { task } = await ctx.client().updateTask(
    {
      id,
      ...(opts.priority !== undefined ? { priority: opts.priority } : {}),
      // 0 keeps the task's current request.
      ...(resources ? { resources: create(ResourcesSchema, { millicpu: BigInt(opts.cpu ?? 0), memoryBytes: BigInt(opts.mem ?? 0) }) } : {}),
      setConstraints: opts.label !== undefined || dropLabels,
      constraints: opts.label ?? {},
      ...(opts.maxParallel !== undefined ? { maxParallel: opts.maxParallel } : {}),
    },
    ctx.unary(),
  );
  if (!task) throw new Error(`management node returned no task for ${JSON.stringify(id)}`);
  const now = Date.now();
  ctx.print(view(TaskSchema, task, () => taskFields(task, now)));
}
