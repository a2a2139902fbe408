// The ManagementService client schedctl talks through.
import * as grpc from '@grpc/grpc-js';
import type { GenService } from '@bufbuild/protobuf/codegenv2';
import { createServiceClient, type ServiceClient } from '../../common/grpc-service.js';
import { ManagementService } from '../../proto/gen/sched/v1/management_pb.js';
import { clientCredentials, type TlsFiles } from '../../common/tls.js';

type MethodsOf<S> = S extends GenService<infer M> ? M : never;
export type ManagementClient = ServiceClient<MethodsOf<typeof ManagementService>>;

/** Mutual TLS with the configured admin certificate, else plain TCP. */
export function createManagementClient(address: string, tls?: TlsFiles): ManagementClient {
  return createServiceClient(ManagementService, address, tls ? clientCredentials(tls) : grpc.credentials.createInsecure());
}
