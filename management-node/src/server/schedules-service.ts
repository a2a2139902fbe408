// ManagementService's schedule handlers: thin; the rules and the state are in schedules/.
import type * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import {
  CreateScheduleResponseSchema,
  DeleteScheduleResponseSchema,
  GetScheduleResponseSchema,
  ListSchedulesResponseSchema,
  PauseScheduleResponseSchema,
  TriggerScheduleResponseSchema,
} from '../../../proto/gen/schedapi/v1/management_pb.js';
import { InvalidArgumentError } from '../../../common/errors.js';
import type { Cluster } from '../cluster.js';
import type { ManagementHandlers } from './management-service.js';

type ScheduleHandlers = Pick<ManagementHandlers, 'createSchedule' | 'getSchedule' | 'listSchedules' | 'deleteSchedule' | 'pauseSchedule' | 'triggerSchedule'>;
/** management-service.ts's adapter from a function to a unary handler. */
type Unary = <Req, Res>(fn: (req: Req) => Promise<Res> | Res) => grpc.handleUnaryCall<Req, Res>;

export function scheduleHandlers(cluster: Cluster, unary: Unary): ScheduleHandlers {
  const schedules = cluster.schedules;
  const handlers: ScheduleHandlers = {
    createSchedule: unary(async (req) => {
      if (!req.schedule) throw new InvalidArgumentError('schedule', 'must be given');
      return create(CreateScheduleResponseSchema, { schedule: await schedules.create(req.schedule) });
    }),
    getSchedule: unary((req) => create(GetScheduleResponseSchema, { schedule: schedules.get(req.name) })),
    listSchedules: unary(() => create(ListSchedulesResponseSchema, { schedules: schedules.list() })),
    deleteSchedule: unary(async (req) => create(DeleteScheduleResponseSchema, { schedule: await schedules.remove(req.name) })),
    pauseSchedule: unary(async (req) =>
      create(PauseScheduleResponseSchema, { schedule: await schedules.pause(req.name, req.pause) }),
    ),
    triggerSchedule: unary(async (req) => {
      const { schedule, task } = await schedules.trigger(req.name);
      return create(TriggerScheduleResponseSchema, { schedule, ...(task ? { task: cluster.view(task) } : {}) });
    }),
  };
  return handlers;
}
