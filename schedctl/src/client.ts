// The ManagementService client schedctl talks through.
import * as grpc from '@grpc/grpc-js';
import type { GenService } from '@bufbuild/protobuf/codegenv2';
import { createServiceClient, type ServiceClient } from '../../common/grpc-service.js';
import { ManagementService } from '../../proto/gen/sched/v1/management_pb.js';

type MethodsOf<S> = S extends GenService<infer M> ? M : never;
export type ManagementClient = ServiceClient<MethodsOf<typeof ManagementService>>;

/** Plain TCP for now; TLS credentials plug in here once common/tls exists. */
export function createManagementClient(address: string): ManagementClient {
  return createServiceClient(ManagementService, address, grpc.credentials.createInsecure());
}
