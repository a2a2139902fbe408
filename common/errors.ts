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
/**
 * A reference (an id prefix, a task's short id, a worker's name) that names several: the first
 * few are listed. matches is every match found; capped: the search stopped there, so maybe more.
 */
export class AmbiguousIdError extends SchedError {
  constructor(kind: string, ref: string, matches: string[], capped = false) {
    const shown = matches.slice(0, 5);
    const more = matches.length - shown.length;
    const rest = more > 0 || capped ? ` (and ${more}${capped ? '+' : ''} more)` : '';
    const quoted = JSON.stringify(ref.length > 128 ? `${ref.slice(0, 128)}…` : ref);
    super(`ambiguous ${kind} id ${quoted}: matches ${shown.join(', ')}${rest}; give more characters`, grpc.status.INVALID_ARGUMENT);
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

/**
 * The cause of a connection failure in the operator's words, from grpc-js's own ("Failed to
 * connect", "Protocol error", OpenSSL's "wrong version number", "Name resolution failed for
 * target dns:…"); undefined when the error is not one. tlsClient: whether the client spoke TLS.
 */
export function connectionCause(details: string, tlsClient?: boolean): string | undefined {
  const host = /Name resolution failed for target (?:dns:)?(.*?)(?::\d+)?\s*$/m.exec(details);
  if (host) return `unknown host ${JSON.stringify(host[1])} (the name does not resolve)`;
  if (/wrong version number|packet length too long|http request/i.test(details)) {
    return "it does not speak TLS, but schedctl's config has a tls: section (remove it, or give the management node one)";
  }
  if (/Protocol error/.test(details)) return 'it answered HTTP/1.1, not gRPC (is that the metrics port?)';
  if (/ECONNREFUSED/.test(details)) return 'connection refused (is the management node running, and listening on that port?)';
  if (/EHOSTUNREACH|ENETUNREACH/.test(details)) return 'no route to that host';
  if (/ETIMEDOUT/.test(details)) return 'the connection timed out';
  if (/certificate|self.signed|Hostname\/IP does not match|CERT_|unable to (get|verify)/i.test(details)) {
    return `its TLS certificate is not accepted: ${details.replace(/^.*?Last error: (Error: )?/, '').trim()}`;
  }
  if (/Failed to connect/.test(details)) {
    return tlsClient === false
      ? "the connection failed (if the management node uses TLS, schedctl's config needs a tls: section)"
      : 'the connection failed';
  }
  return undefined;
}

/**
 * describeRpcError renders a client-side gRPC error as one line for humans: what could not be
 * done, then why ("cannot reach the management node at h:p: connection refused (…)").
 */
export function describeRpcError(err: unknown, address: string, tlsClient?: boolean): string {
  const e = err as Partial<grpc.ServiceError>;
  if (e.code === grpc.status.UNAVAILABLE && e.details !== undefined) {
    // grpc-js appends "Resolution note: ..." (often empty) and a timestamp; the connect error is what matters.
    const details = e.details.replace(/\.?\s*Resolution note:.*$/s, '').replace(/\s*\(\d{4}-\d\d-\d\dT[\d:.]+Z\)\s*$/, '');
    const cause = connectionCause(details, tlsClient);
    if (cause) return `cannot reach the management node at ${address}: ${cause}`;
    if (/No connection established|\bconnect\b/i.test(details)) {
      return `cannot reach the management node at ${address}: ${details.replace(/^No connection established\. Last error: (Error: )?/, '')}`;
    }
  }
  if (e.code === grpc.status.DEADLINE_EXCEEDED) return `management node at ${address} did not answer in time`;
  if (e.code !== undefined && e.details !== undefined) return e.details;
  return err instanceof Error ? err.message : String(err);
}
