import { create } from '@bufbuild/protobuf';
import { ScheduleSchema } from '../../../proto/gen/schedapi/v1/types_pb.js';
import type { Ctx } from './context.js';
import { printSchedule } from './schedules-ls.js';
import { specFromOptions, type RunOptions } from './tasks-run.js';

export interface CreateOptions extends Omit<RunOptions, 'count' | 'wait' | 'idempotencyKey' | 'file'> {
  cron: string;
  timeZone?: string;
  overlap: string;
  startingDeadline?: number;
  history?: number;
  paused?: boolean;
}

/**
 * `schedctl schedules create NAME --cron EXPR [task flags] -- CMD...` (registered in
 * register-schedules.ts). The manager checks the expression (croner's message names
 * what is wrong), the time zone and the task; prints the schedule.
 */
export async function schedulesCreate(ctx: Ctx, name: string, argv: string[], opts: CreateOptions): Promise<void> {
  const schedule = create(ScheduleSchema, {
    name,
    cron: opts.cron,
    timeZone: opts.timeZone ?? '',
    overlap: opts.overlap,
    startingDeadlineMs: opts.startingDeadline ?? 0,
    history: opts.history ?? 0,
    paused: opts.paused ?? false,
    spec: specFromOptions(argv, opts),
  });
  const res = await ctx.client().createSchedule({ schedule }, ctx.unary());
  if (!res.schedule) throw new Error('management node created the schedule but returned none');
  printSchedule(ctx, res.schedule);
}
