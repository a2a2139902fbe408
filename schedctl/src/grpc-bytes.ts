// The grpc-js side of paging.ts: a unary call through the ordinary client
// whose answer is handed over undecoded, and the error grpc-js makes of an
// answer it cannot decode. Loaded only when a listing cannot take the plain
// HTTP/2 road (h2-unary.ts), or its answer does not decode.
import * as grpc from '@grpc/grpc-js';
import { create, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import type { ManagementClient } from './client.js';
import type { UnaryMethod } from './paging.js';

/** The call as common/grpc-service.ts makes it (path, fresh Metadata, deadline), its answer as bytes. */
export function rawUnary<I extends DescMessage>(
  client: ManagementClient,
  method: UnaryMethod<I>,
  req: MessageInitShape<I>,
  deadline: number | undefined,
): Promise<Buffer> {
  const options: grpc.CallOptions = deadline !== undefined ? { deadline } : {};
  return new Promise((resolve, reject) => {
    client.raw.makeUnaryRequest(
      `/${method.parent.typeName}/${method.name}`,
      (msg: MessageShape<I>) => Buffer.from(toBinary(method.input, msg)),
      (bytes: Buffer) => bytes,
      create(method.input, req),
      new grpc.Metadata(),
      options,
      (err: grpc.ServiceError | null, bytes?: Buffer) => (err ? reject(err) : resolve(bytes!)),
    );
  });
}

/** What grpc-js fails a call with when its answer does not decode (client-interceptors.ts, call.ts). */
export function parsingError(cause: unknown): grpc.ServiceError {
  const details = `Response message parsing error: ${cause instanceof Error ? cause.message : String(cause)}`;
  return Object.assign(new Error(`${grpc.status.INTERNAL} ${grpc.status[grpc.status.INTERNAL]}: ${details}`), {
    code: grpc.status.INTERNAL,
    details,
    metadata: new grpc.Metadata(),
  });
}
