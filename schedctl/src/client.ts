// The ManagementService client schedctl talks through.
import * as grpc from '@grpc/grpc-js';
import type { GenService } from '@bufbuild/protobuf/codegenv2';
import { createServiceClient, type ServiceClient } from '../../common/grpc-service.js';
import { ManagementService } from '../../proto/gen/sched/v1/management_pb.js';
import { clientCredentials, type TlsFiles } from '../../common/tls.js';

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

/** Mutual TLS with the configured admin certificate, else plain TCP. */
export function createManagementClient(address: string, tls?: TlsFiles): ManagementClient {
  return createServiceClient(ManagementService, address, tls ? clientCredentials(tls) : grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
}
