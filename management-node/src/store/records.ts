// Key schema and value codec: tasks/<id>, workers/<id>, schedules/<name>, meta/schema; values are protobuf binary.
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { ScheduleSchema, TaskSchema, WorkerSchema, type Schedule, type Task, type Worker } from '../../../proto/gen/schedapi/v1/types_pb.js';

export const TASKS = 'tasks/';
export const WORKERS = 'workers/';
export const SCHEDULES = 'schedules/';
export const SCHEMA_KEY = 'meta/schema';
export const SCHEMA_VERSION = 1;

export const taskKey = (id: string): string => TASKS + id;
export const workerKey = (id: string): string => WORKERS + id;
export const encodeTask = (t: Task): Uint8Array => toBinary(TaskSchema, t);
export const decodeTask = (b: Uint8Array): Task => fromBinary(TaskSchema, b);
export const encodeWorker = (w: Worker): Uint8Array => toBinary(WorkerSchema, w);
export const decodeWorker = (b: Uint8Array): Worker => fromBinary(WorkerSchema, b);
export const scheduleKey = (name: string): string => SCHEDULES + name;
export const encodeSchedule = (s: Schedule): Uint8Array => toBinary(ScheduleSchema, s);
export const decodeSchedule = (b: Uint8Array): Schedule => fromBinary(ScheduleSchema, b);
