import { ListSchedulesResponseSchema } from '../../../proto/gen/schedapi/v1/management_pb.js';
import { ScheduleSchema, type Schedule } from '../../../proto/gen/schedapi/v1/types_pb.js';
import { ageOfMs, shellQuote, truncate } from '../format.js';
import { view, type Rows } from '../printers/view.js';
import type { Ctx } from './context.js';

const HEAD = ['NAME', 'CRON', 'TIME ZONE', 'OVERLAP', 'STATE', 'NEXT', 'LAST RUN', 'COMMAND'];

/** When a time is due, from now: "in 5m", or "-". */
function inTime(unixMs: bigint, now: number): string {
  const ms = Number(unixMs);
  return ms > 0 ? `in ${ageOfMs(2 * now - ms, now)}` : '-';
}

/** The schedules as table rows (ls, and what create, pause, resume and rm print). */
export function scheduleRows(list: Schedule[], now: number, wide = false): Rows {
  return {
    kind: 'rows',
    head: HEAD,
    rows: list.map((s) => {
      const last = s.runs[0];
      const cmd = shellQuote(s.spec?.argv ?? []);
      return [
        s.name,
        s.cron,
        s.timeZone || 'UTC',
        s.overlap,
        s.paused ? 'paused' : 'active',
        s.paused ? '-' : inTime(s.nextSlotUnixMs, now),
        last ? `${last.outcome} ${ageOfMs(Number(last.slotUnixMs), now)} ago` : '-',
        wide ? cmd : truncate(cmd, 40),
      ];
    }),
  };
}

/** Prints one schedule as a one-row table (or the message under -o json/yaml; its name under -o name). */
export function printSchedule(ctx: Ctx, s: Schedule): void {
  ctx.print(view(ScheduleSchema, s, (wide) => scheduleRows([s], Date.now(), wide), { names: () => [s.name] }));
}

/** `schedctl schedules ls` (registered in register-schedules.ts). */
export async function schedulesLs(ctx: Ctx): Promise<void> {
  const res = await ctx.client().listSchedules({}, ctx.unary());
  ctx.print(view(ListSchedulesResponseSchema, res, (wide) => scheduleRows(res.schedules, Date.now(), wide), { names: () => res.schedules.map((s) => s.name) }));
}
