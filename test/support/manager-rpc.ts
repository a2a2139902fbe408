// A manager in the test process: a Cluster on a real embedded store, its
// ManagementService served by grpc-js on loopback, and a client of it. Workers are
// played by FakeLinks (cluster.hello), so a test drives their reports by hand.
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { pino } from 'pino';
import { ManagementService } from '../../proto/gen/schedapi/v1/management_pb.js';
import { HelloSchema } from '../../proto/gen/schedapi/v1/worker_pb.js';
import { createServiceClient, serviceDefinition, type ServiceClient } from '../../common/grpc-service.js';
import { Cluster, type ClusterOptions } from '../../management-node/src/cluster.js';
import { managementHandlers } from '../../management-node/src/server/management-service.js';
import { createEmbeddedStore } from '../../management-node/src/store/embedded-store.js';
import { createGroupCommitter, type GroupCommitter } from '../../management-node/src/store/group-commit.js';
import type { Store } from '../../management-node/src/store/store.js';

export interface ManagerRpc {
  cluster: Cluster;
  client: ServiceClient<(typeof ManagementService)['method']>;
  store: Store;
  committer: GroupCommitter;
  /** The clock the cluster reads; tests move it. */
  clock: { now: number };
  close(): Promise<void>;
}

/** A Hello of a worker with 2 cores and 1 GiB. */
export const helloOf = (
  id: string,
  more: { name?: string; labels?: Record<string, string>; hardware?: { hostname: string }; running?: Array<{ taskId: string; attempt: number }> } = {},
) =>
  create(HelloSchema, { workerId: id, capacity: { millicpu: 2000n, memoryBytes: 1n << 30n }, ...more });

/** startManagerRpc starts a cluster with its ManagementService on 127.0.0.1 and a client of it. */
export async function startManagerRpc(opts: Partial<ClusterOptions> = {}): Promise<ManagerRpc> {
  const dir = mkdtempSync(join(tmpdir(), 'sched-rpc-'));
  const store = createEmbeddedStore(dir);
  const log = pino({ level: 'silent' });
  const committer = createGroupCommitter(store, log);
  const clock = { now: 1_000_000 };
  const cluster = new Cluster(committer, { pingIntervalMs: 1000, missedPings: 3, ackTimeoutMs: 500, recoveryGraceMs: 0, now: () => clock.now, ...opts }, log);
  const server = new grpc.Server();
  server.addService(serviceDefinition(ManagementService), managementHandlers(cluster, 'embedded') as unknown as grpc.UntypedServiceImplementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const client = createServiceClient(ManagementService, `127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return {
    cluster,
    client,
    store,
    committer,
    clock,
    async close() {
      client.close();
      server.forceShutdown();
      await committer.flush();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** rpcError resolves with the error a call fails with (and fails the test if it succeeds). */
export function rpcError(promise: Promise<unknown>): Promise<grpc.ServiceError> {
  return promise.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (err: unknown) => err as grpc.ServiceError,
  );
}
