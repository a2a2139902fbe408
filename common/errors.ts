// Typed errors and the one map from them to gRPC status codes.
import * as grpc from '@grpc/grpc-js';

export class SchedError extends Error {
  constructor(message: string, readonly code: grpc.status) {
    super(message);
    this.name = new.target.name;
  }
}
export class InvalidArgumentError extends SchedError {
  constructor(field: string, problem: string) {
    super(`${field}: ${problem}`, grpc.status.INVALID_ARGUMENT);
  }
}
export class NotFoundError extends SchedError {
  constructor(kind: string, id: string) {
    super(`${kind} ${JSON.stringify(id.length > 128 ? `${id.slice(0, 128)}…` : id)} not found`, grpc.status.NOT_FOUND);
  }
}
export class StoreUnavailableError extends SchedError {
  constructor(detail: string) {
    super(`store unavailable: ${detail}`, grpc.status.UNAVAILABLE);
  }
}
export class UnauthenticatedError extends SchedError {
  constructor(message: string) {
    super(message, grpc.status.UNAUTHENTICATED);
  }
}
/** The request is valid but the cluster is not in a state to serve it (e.g. logs of a task that never started). */
export class FailedPreconditionError extends SchedError {
  constructor(message: string) {
    super(message, grpc.status.FAILED_PRECONDITION);
  }
}
/** A worker the request needs is not connected. */
export class WorkerUnavailableError extends SchedError {
  constructor(message: string) {
    super(message, grpc.status.UNAVAILABLE);
  }
}
export class ResourceExhaustedError extends SchedError {
  constructor(message: string) {
    super(message, grpc.status.RESOURCE_EXHAUSTED);
  }
}
/** The store answered, and refused the write for good (e.g. a request over etcd's size limit): retrying cannot help. */
export class StoreRefusedError extends SchedError {
  constructor(detail: string) {
    super(`store refused the write: ${detail}`, grpc.status.FAILED_PRECONDITION);
  }
}
/** Something with that identity exists and is live (e.g. a worker id with a connected session). */
export class AlreadyExistsError extends SchedError {
  constructor(message: string) {
    super(message, grpc.status.ALREADY_EXISTS);
  }
}
/** Authenticated, but not allowed to act as what it claims (e.g. another worker's id). */
export class PermissionDeniedError extends SchedError {
  constructor(message: string) {
    super(message, grpc.status.PERMISSION_DENIED);
  }
}
/** The manager is up but not serving yet (it is loading its state). */
export class StartingError extends SchedError {
  constructor() {
    super('management node is starting (loading its state); try again shortly', grpc.status.UNAVAILABLE);
  }
}
export class ShuttingDownError extends SchedError {
  constructor() {
    super('management node is shutting down', grpc.status.UNAVAILABLE);
  }
}

/** Trailing metadata of a NotLeaderError: the leader's address, host:port, when one is known. */
export const LEADER_METADATA = 'sched-leader';

/**
 * This manager does not lead (a follower, or one not yet elected): the caller
 * should go to the leader, named in the message and in LEADER_METADATA
 * (FAILED_PRECONDITION), or try again when none is known (UNAVAILABLE).
 */
export class NotLeaderError extends SchedError {
  constructor(readonly leader: string | undefined) {
    // With no leader to name (an election under way) it is UNAVAILABLE: try again, as for a manager that is down.
    super(
      leader ? `not the leader; the leader is at ${leader}` : 'not the leader; no leader elected yet',
      leader ? grpc.status.FAILED_PRECONDITION : grpc.status.UNAVAILABLE,
    );
  }
}

/** The leader's address a NotLeaderError carried (in its trailing metadata), if any. */
export function leaderHint(err: unknown): string | undefined {
  const e = err as Partial<grpc.ServiceError>;
  if (e.code !== grpc.status.FAILED_PRECONDITION || !e.metadata) return undefined;
  const v = e.metadata.get(LEADER_METADATA)[0];
  return typeof v === 'string' && /^[^\s/]{1,255}:\d{1,5}$/.test(v) ? v : undefined;
}

/** True for the error of a manager that does not lead (with or without a leader to name). */
export function isNotLeader(err: unknown): boolean {
  const e = err as Partial<grpc.ServiceError>;
  return (e.code === grpc.status.FAILED_PRECONDITION || e.code === grpc.status.UNAVAILABLE) && /^not the leader;/.test(e.details ?? '');
}

/** toStatus maps any thrown value to a gRPC error object; unknown errors become INTERNAL. */
export function toStatus(err: unknown): Partial<grpc.StatusObject> {
  if (err instanceof NotLeaderError) {
    const metadata = new grpc.Metadata();
    if (err.leader) metadata.set(LEADER_METADATA, err.leader);
    return { code: err.code, details: err.message, metadata };
  }
  if (err instanceof SchedError) return { code: err.code, details: cut(err.message) };
  const message = err instanceof Error ? err.message : String(err);
  return { code: grpc.status.INTERNAL, details: cut(`internal error: ${message}`) };
}

/** Status details travel in an HTTP/2 header: a huge one (an echoed 200 KB id) breaks the client's connection. */
const MAX_DETAILS = 1024;
const cut = (s: string): string => (s.length > MAX_DETAILS ? `${s.slice(0, MAX_DETAILS)}… (cut)` : s);

/** describeRpcError renders a client-side gRPC error as one line for humans. */
export function describeRpcError(err: unknown, address: string): string {
  const e = err as Partial<grpc.ServiceError>;
  if (e.code === grpc.status.UNAVAILABLE && /ECONNREFUSED|No connection established|connect/i.test(e.details ?? '')) {
    // grpc-js appends "Resolution note: ..." (often empty); the last connect error is what matters.
    const details = (e.details ?? '').replace(/\.?\s*Resolution note:.*$/s, '').replace(/^No connection established\. Last error: (Error: )?/, '');
    return `cannot reach management node at ${address}: ${details}`;
  }
  if (e.code === grpc.status.DEADLINE_EXCEEDED) return `management node at ${address} did not answer in time`;
  if (e.code !== undefined && e.details !== undefined) return e.details;
  return err instanceof Error ? err.message : String(err);
}
