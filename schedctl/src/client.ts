// The ManagementService client schedctl talks through.
//
// No TLS code here: mutual TLS comes with a config file (common/tls.ts, with
// zod), which runtime.ts loads only then and hands over as credentials.
import * as grpc from '@grpc/grpc-js';
import type { GenService } from '@bufbuild/protobuf/codegenv2';
import { createServiceClient, type ServiceClient } from '../../common/grpc-service.js';
import { ManagementService } from '../../proto/gen/sched/v1/management_pb.js';

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

/** A client dialling `address` with the given credentials (mutual TLS or insecure()). */
export function createManagementClient(address: string, credentials: grpc.ChannelCredentials): ManagementClient {
  return createServiceClient(ManagementService, address, credentials, CHANNEL_OPTIONS);
}
