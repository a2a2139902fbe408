// One server stream of the manager (WatchTasks, WatchEvents), read until the caller has what
// it waited for or gives up; its loss is an error the caller's retry loop reopens it on.
import * as grpc from '@grpc/grpc-js';

/**
 * Reads call until onData returns true (resolves), or signal aborts (resolves); rejects when
 * the stream fails, or ends first (as UNAVAILABLE with endedEarly, so it is reopened). The call
 * is cancelled when settled; the CANCELLED error that causes is ignored.
 */
export function readStream<T>(call: grpc.ClientReadableStream<T>, signal: AbortSignal, onData: (msg: T) => boolean, endedEarly: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      fn();
      call.cancel();
    };
    const onAbort = (): void => settle(resolve);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    call.on('data', (msg: T) => {
      if (!settled && onData(msg)) settle(resolve);
    });
    call.on('error', (err: Error) => settle(() => reject(err)));
    call.on('end', () => settle(() => reject(Object.assign(new Error(endedEarly), { code: grpc.status.UNAVAILABLE, details: endedEarly }))));
  });
}
