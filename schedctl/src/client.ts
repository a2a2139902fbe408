// The ManagementService client schedctl talks through.
//
// No TLS code here: mutual TLS comes with a config file (common/tls.ts, with
// zod), which runtime.ts loads only then and hands over as credentials.
import * as grpc from '@grpc/grpc-js';
import type { GenService } from '@bufbuild/protobuf/codegenv2';
import type { ServiceClient } from '../../common/grpc-service.js';
import { createManagerClient, parseManagers, type ManagerClient } from '../../common/manager-client.js';
import { ManagementService } from '../../proto/gen/schedapi/v1/management_pb.js';

type MethodsOf<S> = S extends GenService<infer M> ? M : never;
export type ManagementClient = ServiceClient<MethodsOf<typeof ManagementService>>;

/**
 * Redials of a lost connection: grpc-js waits 1s, then up to 2 minutes between
 * tries, which a retrying `tasks run` or `--wait` would sit out against a
 * manager that is back after a second. Short and capped instead.
 */
const CHANNEL_OPTIONS: grpc.ClientOptions = {
  'grpc.initial_reconnect_backoff_ms': 200,
  'grpc.max_reconnect_backoff_ms': 2000,
};

/** Plain TCP, when no TLS is configured. */
export const insecure = (): grpc.ChannelCredentials => grpc.credentials.createInsecure();

/**
 * A client of `managers` ("host:port", or several comma-separated) with the given credentials
 * (mutual TLS or insecure()): its unary calls find the leader and follow it (common/manager-client.ts).
 */
export function createManagementClient(managers: string, credentials: grpc.ChannelCredentials): ManagerClient<MethodsOf<typeof ManagementService>> {
  return createManagerClient(ManagementService, parseManagers([managers]), credentials, CHANNEL_OPTIONS);
}

/** Where the leader is, asked of any of several managers (a follower's Status names it); one manager is its own answer. */
export async function findLeader(managers: string, credentials: grpc.ChannelCredentials, deadlineMs: number | undefined): Promise<string> {
  const list = parseManagers([managers]);
  if (list.length === 1) return list[0]!;
  const client = createManagementClient(managers, credentials);
  try {
    const status = await client.status({}, deadlineMs !== undefined ? { deadlineMs } : {});
    return status.leader || client.current();
  } finally {
    client.close();
  }
}
