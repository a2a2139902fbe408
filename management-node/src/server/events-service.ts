// WatchEvents: a stream of the manager's event history (events.ts) from a
// revision on. The stream reads the history with a cursor as fast as the client
// takes it: it pauses for gRPC's flow control only between revisions, so a
// client always holds every event of the revisions it has seen, and may resume
// after the last one. A client so slow that its next event has left the history
// is cut off (RESOURCE_EXHAUSTED; it must list again), rather than the manager
// keeping a copy for it.
import { create } from '@bufbuild/protobuf';
import { WatchEventsResponseSchema, type WatchEventsRequest } from '../../../proto/gen/schedapi/v1/management_pb.js';
import type { Task, Worker } from '../../../proto/gen/schedapi/v1/types_pb.js';
import { ResourceExhaustedError, ShuttingDownError } from '../../../common/errors.js';
import type { EventLog, StoredEvent } from '../events.js';
import type { ManagementHandlers } from './management-service.js';
import { streamEnd } from './stream-end.js';

/**
 * The filter of one stream: which kinds, and for tasks, which group. A group is a set of
 * tasks, so naming one without naming a kind means its tasks only.
 */
export function eventFilter(req: Pick<WatchEventsRequest, 'tasks' | 'workers'>, groupId: string): (e: StoredEvent, object: () => Task | Worker) => boolean {
  const neither = !req.tasks && !req.workers;
  const tasks = neither || req.tasks;
  const workers = (neither && !groupId) || req.workers;
  return (e, object) => {
    if (e.kind === 'worker') return workers;
    return tasks && (!groupId || (object() as Task).groupId === groupId);
  };
}

/** watchEvents serves WatchEvents from events; group resolves a group reference (a prefix, a short id). */
export function watchEvents(events: EventLog, group: (ref: string) => string): ManagementHandlers['watchEvents'] {
  return (call) => {
    const stream = streamEnd(call);
    const end = stream.end;
    try {
      const req = call.request;
      const matches = eventFilter(req, req.groupId ? group(req.groupId) : '');
      let cursor = events.start(req.afterRevision);
      /** Waiting for the client to take what was written (flow control). */
      let draining = false;
      /** The revision of the last event the cursor passed. */
      let last: bigint | undefined;
      const pump = (): void => {
        if (stream.ended || call.cancelled) return;
        for (;;) {
          const e = events.at(cursor);
          if (e === 'gone') {
            end(new ResourceExhaustedError(`event stream: the client reads too slowly (the events it needs next are no longer held); list again and watch from the revision it gives`));
            return;
          }
          if (e === undefined || draining) return;
          // Paused only between two revisions, so a client never holds part of one txn's changes;
          // gRPC's buffer then holds at most its high-water mark plus one txn (≤ 128 changes).
          if (e.revision !== last && call.writableNeedDrain) {
            draining = true;
            call.once('drain', () => {
              draining = false;
              pump();
            });
            return;
          }
          cursor++;
          last = e.revision;
          const object = (): Task | Worker => events.object(e);
          if (!matches(e, object)) continue;
          const o = object();
          call.write(
            create(WatchEventsResponseSchema, {
              revision: e.revision,
              unixMs: BigInt(e.unixMs),
              object: e.kind === 'task' ? { case: 'task', value: o as Task } : { case: 'worker', value: o as Worker },
            }),
          );
        }
      };
      stream.stop = events.listen({ wake: pump, close: () => end(new ShuttingDownError()) });
      pump();
    } catch (err) {
      end(err as Error);
      return;
    }
    call.on('cancelled', () => end());
    call.on('close', () => stream.stop());
  };
}
