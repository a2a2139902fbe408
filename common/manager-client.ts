// A client of the ManagementService that finds the leader among several
// managers and follows it across failovers. A unary call goes to the manager
// that answered last; a manager that does not lead answers FAILED_PRECONDITION
// naming the leader (NotLeaderError), and the call goes there at once; one
// that cannot be reached, or names no leader (an election under way), is
// skipped for the next address. Each address is tried at most once per call
// (a named leader not in the list counts as one more), so a call fails as fast
// as one manager would: with UNAVAILABLE when no manager leads or answers, so
// that a caller's retry loop (UNAVAILABLE is retryable) waits out an election.
// A call that runs out of time leaves the next one to start at the next manager.
// Streams go to the current manager as they are; callers that follow one
// across a failover redial it (leaderHint tells where).
import * as grpc from '@grpc/grpc-js';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import { isNotLeader, leaderHint } from './errors.js';
import { createServiceClient, type ServiceClient } from './grpc-service.js';

/** Turns a manager list as users give it ("a:1,b:2", or several flags) into addresses. */
export function parseManagers(values: readonly string[]): string[] {
  return [...new Set(values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== ''))];
}

export type ManagerClient<T extends GenServiceMethods> = ServiceClient<T> & {
  /** The manager calls go to now (the last that answered, or the leader one named). */
  current(): string;
  /**
   * A stream on the current manager failed with err: the next one goes to the leader err
   * names, or else (the manager was lost, or named no leader) to the next manager. True when
   * the caller should open it again (err said the manager was not the leader, or unavailable).
   */
  streamFailed(err: unknown): boolean;
};

export function createManagerClient<T extends GenServiceMethods>(
  service: GenService<T>,
  addresses: readonly string[],
  credentials: grpc.ChannelCredentials,
  options: grpc.ClientOptions = {},
): ManagerClient<T> {
  if (addresses.length === 0) throw new Error('no manager address');
  const list = [...addresses];
  const clients = new Map<string, ServiceClient<T>>();
  const clientOf = (address: string): ServiceClient<T> => {
    let c = clients.get(address);
    if (!c) clients.set(address, (c = createServiceClient(service, address, credentials, options)));
    return c;
  };
  let current = list[0]!;
  /** The manager after `address` in the list (after the first, for one not in it: a named leader). */
  const after = (address: string): string => list[(Math.max(0, list.indexOf(address)) + 1) % list.length]!;
  const wrapper: Record<string, unknown> = {
    current: () => current,
    streamFailed: (err: unknown) => {
      const e = err as Partial<grpc.ServiceError>;
      const hint = leaderHint(e);
      if (hint !== undefined) current = hint;
      else if (isNotLeader(e) || e.code === grpc.status.UNAVAILABLE) current = after(current);
      else return false;
      return true;
    },
    close: () => {
      for (const c of clients.values()) c.close();
    },
    get raw() {
      return clientOf(current).raw;
    },
  };
  for (const method of service.methods) {
    const name = method.localName as keyof ServiceClient<T> & string;
    if (method.methodKind !== 'unary') {
      wrapper[name] = (...args: unknown[]) => (clientOf(current)[name] as (...a: unknown[]) => unknown)(...args);
      continue;
    }
    wrapper[name] = async (req: unknown, opts?: { deadlineMs?: number }) => {
      const tried = new Set<string>();
      const errors: string[] = [];
      let only: unknown;
      // The current manager first, then the rest of the list in order from it.
      const from = Math.max(0, list.indexOf(current));
      const queue = [current, ...list.slice(from + 1), ...list.slice(0, from)];
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
        if (tried.has(next)) continue;
        tried.add(next);
        try {
          const res = await (clientOf(next)[name] as (r: unknown, o?: unknown) => Promise<unknown>)(req, opts);
          current = next;
          return res;
        } catch (err) {
          const e = err as grpc.ServiceError;
          const hint = leaderHint(e);
          if (e.code === grpc.status.DEADLINE_EXCEEDED && list.length > 1) {
            // No time left for another: the next call starts at the next manager (this one may be frozen).
            current = after(next);
            throw err;
          }
          if (hint === undefined && !isNotLeader(e) && e.code !== grpc.status.UNAVAILABLE) throw err;
          errors.push(`${next}: ${e.details || e.message}`);
          only = errors.length === 1 ? err : undefined;
          if (hint !== undefined) queue.unshift(hint); // the leader, wherever it is
        }
      }
      if (only !== undefined) throw only; // one manager: its own error, as a plain client gives it
      throw Object.assign(new Error(`no leading manager answered (${errors.join('; ')})`), {
        code: grpc.status.UNAVAILABLE,
        details: `no leading manager answered (${errors.join('; ')})`,
        metadata: new grpc.Metadata(),
      });
    };
  }
  return wrapper as ManagerClient<T>;
}
