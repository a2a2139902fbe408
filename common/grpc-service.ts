// Turns protobuf-es service descriptors into grpc-js service definitions and
// typed clients, so the wire format is protobuf-es binary end to end.
import * as grpc from '@grpc/grpc-js';
import { fromBinary, toBinary, type DescMessage, type MessageShape, type MessageInitShape } from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';

type AnyMethod = grpc.MethodDefinition<unknown, unknown>;

export function serviceDefinition<T extends GenServiceMethods>(service: GenService<T>): grpc.ServiceDefinition {
  const definition: Record<string, AnyMethod> = {};
  for (const method of service.methods) {
    const { input, output, methodKind } = method;
    definition[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: methodKind === 'client_streaming' || methodKind === 'bidi_streaming',
      responseStream: methodKind === 'server_streaming' || methodKind === 'bidi_streaming',
      requestSerialize: (msg: unknown) => Buffer.from(toBinary(input, msg as MessageShape<DescMessage>)),
      requestDeserialize: (buf: Buffer) => fromBinary(input, buf),
      responseSerialize: (msg: unknown) => Buffer.from(toBinary(output, msg as MessageShape<DescMessage>)),
      responseDeserialize: (buf: Buffer) => fromBinary(output, buf),
    };
  }
  return definition;
}

type In<M extends GenServiceMethods[string]> = MessageShape<M['input']>;
type Out<M extends GenServiceMethods[string]> = MessageShape<M['output']>;

/** Server-side handler types for a service, keyed by the method's localName. */
export type ServiceHandlers<T extends GenServiceMethods> = {
  [K in keyof T]: T[K]['methodKind'] extends 'unary'
    ? grpc.handleUnaryCall<In<T[K]>, Out<T[K]>>
    : T[K]['methodKind'] extends 'server_streaming'
      ? grpc.handleServerStreamingCall<In<T[K]>, Out<T[K]>>
      : T[K]['methodKind'] extends 'bidi_streaming'
        ? grpc.handleBidiStreamingCall<In<T[K]>, Out<T[K]>>
        : grpc.handleClientStreamingCall<In<T[K]>, Out<T[K]>>;
};

export interface CallOptions {
  deadlineMs?: number;
}

/** Client methods: unary calls return promises, streams are grpc-js streams. */
export type ServiceClient<T extends GenServiceMethods> = {
  [K in keyof T]: T[K]['methodKind'] extends 'unary'
    ? (req: MessageInitShape<T[K]['input']>, opts?: CallOptions) => Promise<Out<T[K]>>
    : T[K]['methodKind'] extends 'server_streaming'
      ? (req: MessageInitShape<T[K]['input']>, opts?: CallOptions) => grpc.ClientReadableStream<Out<T[K]>>
      : T[K]['methodKind'] extends 'bidi_streaming'
        ? (opts?: CallOptions) => grpc.ClientDuplexStream<In<T[K]>, Out<T[K]>>
        : never;
} & { close(): void; raw: grpc.Client };

import { create } from '@bufbuild/protobuf';

export function createServiceClient<T extends GenServiceMethods>(
  service: GenService<T>,
  address: string,
  credentials: grpc.ChannelCredentials,
  options: grpc.ClientOptions = {},
): ServiceClient<T> {
  const Ctor = grpc.makeGenericClientConstructor(serviceDefinition(service), service.name);
  const raw = new Ctor(address, credentials, options) as unknown as Record<string, (...args: unknown[]) => unknown> & grpc.Client;
  const client: Record<string, unknown> = { close: () => raw.close(), raw };
  const callOptions = (opts?: CallOptions): grpc.CallOptions =>
    opts?.deadlineMs !== undefined ? { deadline: Date.now() + opts.deadlineMs } : {};
  for (const method of service.methods) {
    const call = raw[method.localName]!.bind(raw);
    switch (method.methodKind) {
      case 'unary':
        client[method.localName] = (req: MessageInitShape<DescMessage>, opts?: CallOptions) =>
          new Promise((resolve, reject) => {
            call(create(method.input, req), new grpc.Metadata(), callOptions(opts), (err: grpc.ServiceError | null, res: unknown) =>
              err ? reject(err) : resolve(res),
            );
          });
        break;
      case 'server_streaming':
        client[method.localName] = (req: MessageInitShape<DescMessage>, opts?: CallOptions) =>
          call(create(method.input, req), new grpc.Metadata(), callOptions(opts));
        break;
      case 'bidi_streaming':
        client[method.localName] = (opts?: CallOptions) => call(new grpc.Metadata(), callOptions(opts));
        break;
      default:
        break;
    }
  }
  return client as ServiceClient<T>;
}
