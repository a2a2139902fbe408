// The one way a server stream of the manager ends: once, with its source stopped first,
// then either an error status or a clean end.
import type * as grpc from '@grpc/grpc-js';
import { toStatus } from '../../../common/errors.js';

export interface StreamEnd {
  /** Ends the stream (with err's status, if given); later calls do nothing. */
  end(err?: Error): void;
  /** Whether end() was called. */
  readonly ended: boolean;
  /** What end() stops first (the source of the stream's messages). */
  stop: () => void;
}

export function streamEnd(call: grpc.ServerWritableStream<unknown, unknown>): StreamEnd {
  const s: StreamEnd = {
    ended: false,
    stop: () => undefined,
    end(err) {
      if (s.ended) return;
      (s as { ended: boolean }).ended = true;
      s.stop();
      if (err) call.emit('error', toStatus(err));
      else call.end();
    },
  };
  return s;
}
