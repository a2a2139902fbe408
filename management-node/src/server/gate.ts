// A manager serves its gRPC services from the start, leader or not: until it
// leads (and again once it may no longer act), every call is refused with
// NotLeaderError, which names the leader so that workers and clients go
// there; Status alone is answered. Once elected, the same registered
// handlers pass every call to the leader's.
import type * as grpc from '@grpc/grpc-js';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import { toStatus } from '../../../common/errors.js';
import type { ServiceHandlers } from '../../../common/grpc-service.js';

type AnyHandler = (call: unknown, callback?: unknown) => void;

export interface GateOptions<T extends GenServiceMethods> {
  /** The leader's handlers, or undefined while this manager may not serve them. */
  leading: () => ServiceHandlers<T> | undefined;
  /** Why a call is refused (NotLeaderError naming the leader). */
  refusal: () => Error;
  /** Methods answered by a follower too (Status). */
  followerHandlers?: Partial<ServiceHandlers<T>>;
}

/** Handlers for service that pass each call to opts.leading() when it gives some, else refuse it. */
export function gate<T extends GenServiceMethods>(service: GenService<T>, opts: GateOptions<T>): ServiceHandlers<T> {
  const handlers: Record<string, AnyHandler> = {};
  for (const method of service.methods) {
    const name = method.localName;
    const streaming = method.methodKind !== 'unary';
    handlers[name] = (call, callback) => {
      const leading = opts.leading() as Record<string, AnyHandler> | undefined;
      const own = (leading ?? (opts.followerHandlers as Record<string, AnyHandler> | undefined))?.[name];
      if (own) return own(call, callback);
      const status = toStatus(opts.refusal());
      if (streaming) (call as grpc.ServerWritableStream<unknown, unknown>).emit('error', status);
      else (callback as grpc.sendUnaryData<unknown>)(status as grpc.ServiceError);
    };
  }
  return handlers as ServiceHandlers<T>;
}
