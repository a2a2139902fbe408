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
} from '../../../proto/gen/schedapi/v1/worker_pb.js';
import type { ServiceHandlers } from '../../../common/grpc-service.js';
import { InvalidArgumentError, ResourceExhaustedError, toStatus } from '../../../common/errors.js';
import { newSessionId } from '../../../common/ids.js';
import type { Logger } from '../../../common/logger.js';
import type { Cluster } from '../cluster.js';
import type { WorkerLink, WorkerMessage } from '../worker-registry.js';
import { checkLogChunk } from '../worker-input.js';
import { peerName } from '../../../common/tls.js';

/**
 * Messages queued to one worker that it has not read. A worker that stops reading is dropped
 * rather than let the manager's memory grow; far above what placement sends one worker at once.
 */
export const MAX_OUTBOUND = 10_000;

export interface WorkerServiceOptions {
  /** A stream that has not said Hello by then is closed. */
  helloTimeoutMs: number;
}

export type WorkerHandlers = ServiceHandlers<(typeof WorkerService)['method']>;

export function workerHandlers(cluster: Cluster, log: Logger, opts: WorkerServiceOptions = { helloTimeoutMs: 10_000 }): WorkerHandlers {
  return {
    connect: (call: grpc.ServerDuplexStream<ConnectRequest, ConnectResponse>) => {
      const address = call.getPeer();
      const certificateName = peerName(call);
      let workerId: string | undefined;
      let closed = false;
      const link: WorkerLink = {
        sessionId: newSessionId(),
        address,
        send(msg: WorkerMessage) {
          if (closed) return;
          // In object mode writableLength counts messages.
          if (call.writableLength >= MAX_OUTBOUND) {
            log.warn({ worker: workerId, address, queued: call.writableLength }, 'worker does not read its stream: dropping it');
            closed = true;
            // Not from inside the cluster's own call that is sending: on the next turn. The
            // 'error' listener below (lost) marks the worker disconnected.
            const err = toStatus(new ResourceExhaustedError(`worker ${workerId ?? '?'} does not read its stream (${MAX_OUTBOUND} messages queued)`));
            queueMicrotask(() => call.emit('error', err));
            return;
          }
          call.write(create(ConnectResponseSchema, { msg }));
        },
        close(reason: string) {
          if (closed) return;
          closed = true;
          log.debug({ worker: workerId, reason }, 'closing worker stream');
          call.end();
        },
      };
      const fail = (err: unknown) => {
        clearTimeout(helloTimer);
        if (closed) return;
        closed = true;
        call.emit('error', toStatus(err));
      };
      const helloTimer = setTimeout(() => {
        log.warn({ address, timeoutMs: opts.helloTimeoutMs }, 'worker stream sent no hello in time: closing it');
        fail(new InvalidArgumentError('msg', `no hello within ${opts.helloTimeoutMs}ms`));
      }, opts.helloTimeoutMs);
      const lost = (reason: string) => {
        clearTimeout(helloTimer);
        closed = true;
        if (workerId) cluster.disconnect(link, workerId, reason);
      };

      const receive = (req: ConnectRequest): void => {
        if (closed) return;
        const m = req.msg;
        if (workerId === undefined) {
          if (m.case !== 'hello') return fail(new InvalidArgumentError('msg', 'the first message must be hello'));
          try {
            cluster.checkHello(m.value, certificateName);
          } catch (err) {
            log.warn({ worker: m.value.workerId.slice(0, 128), address, err: (err as Error).message }, 'worker refused');
            return fail(err);
          }
          clearTimeout(helloTimer);
          link.send({ case: 'welcome', value: cluster.welcomeFor(link.sessionId) });
          workerId = m.value.workerId;
          cluster.hello(link, m.value, certificateName);
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
            checkLogChunk(m.value);
            return cluster.logChunk(workerId, m.value);
          case 'leaving':
            return cluster.leaving(workerId, m.value.reason.slice(0, 1024));
          case 'hello':
            throw new InvalidArgumentError('msg', 'hello was already sent on this stream');
          default:
            return undefined;
        }
      };
      // Each message is handled in isolation: a bad one (or a bug) closes this stream only.
      call.on('data', (req: ConnectRequest) => {
        try {
          receive(req);
        } catch (err) {
          log.error({ worker: workerId, address, err }, 'closing a worker stream after a message it sent failed');
          fail(err); // its 'error' (lost, below) marks the worker disconnected
        }
      });
      call.on('end', () => {
        lost('stream ended by worker');
        if (!call.writableEnded) call.end();
      });
      call.on('error', (err: Error & { details?: string }) => lost(`stream error: ${err.message ?? err.details ?? 'unknown'}`));
      call.on('cancelled', () => lost('stream cancelled'));
      call.on('close', () => lost('stream closed'));
    },
  };
}
