// ManagementService's UpdateTask and HoldTask handlers: thin; the changes are made (and stored)
// by the cluster. UpdateTask has two kinds of change, each in its own branch: a pending task's
// priority, resources and constraints (tasks update ID --priority ...: task-edits.ts), and a
// group's max_parallel. HoldTask holds or releases pending tasks, each id on its own (as cancel).
import type * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import { HoldTaskResponseSchema, UpdateTaskResponseSchema, type UpdateTaskRequest } from '../../../proto/gen/schedapi/v1/management_pb.js';
import { InvalidArgumentError } from '../../../common/errors.js';
import type { Cluster } from '../cluster.js';
import type { ManagementHandlers } from './management-service.js';

type UpdateHandlers = Pick<ManagementHandlers, 'updateTask' | 'holdTask'>;

/** Ids one HoldTask may name (a whole `tasks run --count` group). */
const MAX_HELD = 10_000;
/** management-service.ts's adapter from a function to a unary handler. */
type Unary = <Req, Res>(fn: (req: Req) => Promise<Res> | Res) => grpc.handleUnaryCall<Req, Res>;

/** changesPending: the request changes the task itself (only while it is pending). */
const changesPending = (req: UpdateTaskRequest): boolean => req.priority !== undefined || req.resources !== undefined || req.setConstraints;

export function updateHandlers(cluster: Cluster, unary: Unary): UpdateHandlers {
  return {
    updateTask: unary(async (req: UpdateTaskRequest) => {
      const id = cluster.ids.task(req.id).id;
      if (!changesPending(req) && req.maxParallel === undefined) {
        throw new InvalidArgumentError('update', 'name something to change (priority, resources, constraints or max_parallel)');
      }
      if (changesPending(req)) {
        // Priority, resources, constraints of a pending task (task-edits.ts): stored before the answer.
        await cluster.edits.update(cluster.getTask(id), {
          priority: req.priority,
          resources: req.resources,
          constraints: req.setConstraints ? req.constraints : undefined,
        });
      }
      // The whole group's max_parallel (any member names it).
      if (req.maxParallel !== undefined) await cluster.setMaxParallel(id, req.maxParallel);
      return create(UpdateTaskResponseSchema, { task: await cluster.committed(id) });
    }),
    holdTask: unary(async (req) => {
      // Each id on its own: the ones naming a pending task change, the others come back in errors.
      if (req.ids.length === 0) throw new InvalidArgumentError('ids', 'name at least one task');
      if (req.ids.length > MAX_HELD) throw new InvalidArgumentError('ids', `at most ${MAX_HELD} tasks per request`);
      const { tasks, errors } = cluster.ids.tasksOf([...new Set(req.ids)]);
      const res = await cluster.edits.hold(tasks, req.hold);
      const views = await Promise.all(res.tasks.map((t) => cluster.committed(t.id)));
      return create(HoldTaskResponseSchema, { tasks: views, errors: [...errors, ...res.errors] });
    }),
  };
}
