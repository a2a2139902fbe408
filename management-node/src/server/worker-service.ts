// WorkerService.Connect: one bidirectional stream per worker. The first
// message must be Hello; after Welcome the stream carries pings, offers and
// task reports until either side ends it.
import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import {
  ConnectResponseSchema,
  type ConnectRequest,
  type ConnectResponse,
  type WorkerService,
} from '../../../proto/gen/sched/v1/worker_pb.js';
import type { ServiceHandlers } from '../../../common/grpc-service.js';
import { InvalidArgumentError, toStatus } from '../../../common/errors.js';
import { newSessionId } from '../../../common/ids.js';
import type { Logger } from '../../../common/logger.js';
import type { Cluster, WorkerLink, WorkerMessage } from '../cluster.js';

export function workerHandlers(
  cluster: Cluster,
  pingIntervalMs: number,
  log: Logger,
): ServiceHandlers<(typeof WorkerService)['method']> {
  return {
    connect: (call: grpc.ServerDuplexStream<ConnectRequest, ConnectResponse>) => {
      const address = call.getPeer();
      let workerId: string | undefined;
      let closed = false;
      const link: WorkerLink = {
        sessionId: newSessionId(),
        address,
        send(msg: WorkerMessage) {
          if (!closed) call.write(create(ConnectResponseSchema, { msg }));
        },
        close(reason: string) {
          if (closed) return;
          closed = true;
          log.debug({ worker: workerId, reason }, 'closing worker stream');
          call.end();
        },
      };
      const fail = (err: unknown) => {
        if (closed) return;
        closed = true;
        call.emit('error', toStatus(err));
      };
      const lost = (reason: string) => {
        closed = true;
        if (workerId) cluster.disconnect(link, workerId, reason);
      };

      call.on('data', (req: ConnectRequest) => {
        const m = req.msg;
        if (workerId === undefined) {
          if (m.case !== 'hello') return fail(new InvalidArgumentError('msg', 'the first message must be hello'));
          try {
            cluster.checkHello(m.value);
          } catch (err) {
            log.warn({ worker: m.value.workerId, address, err: (err as Error).message }, 'worker refused');
            return fail(err);
          }
          link.send({ case: 'welcome', value: { sessionId: link.sessionId, pingIntervalMs } });
          workerId = m.value.workerId;
          cluster.hello(link, m.value);
          return;
        }
        // Any message proves the worker alive, not just a pong: a busy worker's pongs queue behind its reports.
        cluster.seen(workerId);
        switch (m.case) {
          case 'pong':
            return cluster.pong(workerId, m.value);
          case 'accepted':
            return cluster.accepted(workerId, m.value.task);
          case 'rejected':
            return cluster.rejected(workerId, m.value.task, m.value.reason);
          case 'started':
            return cluster.started(workerId, m.value.task, m.value.pid, m.value.startedUnixMs);
          case 'finished':
            return cluster.finished(workerId, m.value);
          case 'goodbye':
            log.info({ worker: workerId, reason: m.value.reason }, 'worker said goodbye');
            closed = true;
            return cluster.disconnect(link, workerId, `goodbye: ${m.value.reason}`, true);
          case 'logChunk':
            return cluster.logChunk(workerId, m.value);
          case 'leaving':
            return cluster.leaving(workerId, m.value.reason);
          default:
            return undefined;
        }
      });
      call.on('end', () => {
        lost('stream ended by worker');
        if (!call.writableEnded) call.end();
      });
      call.on('error', (err) => lost(`stream error: ${err.message}`));
      call.on('cancelled', () => lost('stream cancelled'));
      call.on('close', () => lost('stream closed'));
    },
  };
}
