// A real gRPC server playing a manager to one worker session: as the leader
// it records what each stream receives; as a follower it refuses every
// Connect as a real one does (NotLeaderError naming the leader).
import * as grpc from '@grpc/grpc-js';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { NotLeaderError, toStatus } from '../../common/errors.js';
import { serviceDefinition } from '../../common/grpc-service.js';
import { ConnectResponseSchema, WorkerService, type ConnectRequest, type ConnectResponse } from '../../proto/gen/schedapi/v1/worker_pb.js';

type Call = grpc.ServerDuplexStream<ConnectRequest, ConnectResponse>;
type Case = NonNullable<ConnectRequest['msg']['case']>;
type Payload<C extends Case> = Extract<ConnectRequest['msg'], { case: C }> extends { value: infer V } ? V : never;

export class FakeManager {
  server = new grpc.Server();
  /** host:port once listening. */
  address = '';
  /** undefined: leads; otherwise refuses every Connect, naming this leader ('' names none). */
  follower: string | undefined;
  calls: Call[] = [];
  /** Unread messages; next() consumes them. */
  inbox: ConnectRequest[] = [];
  /** Every message received, never consumed. */
  received: ConnectRequest[] = [];
  private waiters: (() => void)[] = [];

  /** connects, when given, gets this manager's address at every Connect, accepted or refused (shared by the fakes of a test). */
  constructor(
    private readonly connects: string[] = [],
    follower?: string,
  ) {
    this.follower = follower;
  }

  async listen(port = 0): Promise<number> {
    this.server.addService(serviceDefinition(WorkerService), {
      connect: (call: Call) => {
        this.connects.push(this.address);
        if (this.follower !== undefined) {
          call.on('error', () => {});
          call.emit('error', toStatus(new NotLeaderError(this.follower || undefined)));
          return;
        }
        this.calls.push(call);
        call.on('data', (m: ConnectRequest) => {
          this.inbox.push(m);
          this.received.push(m);
          for (const w of this.waiters.splice(0)) w();
        });
        call.on('end', () => call.end());
        call.on('error', () => {});
      },
    });
    const bound = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    this.address = `127.0.0.1:${bound}`;
    return bound;
  }

  /** Waits for the next unread message of the given case and returns it (consuming earlier ones). */
  async next<C extends Case>(c: C, timeoutMs = 15_000): Promise<Payload<C>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.inbox.findIndex((m) => m.msg.case === c);
      if (i >= 0) {
        const [m] = this.inbox.splice(0, i + 1).slice(-1);
        return m!.msg.value as unknown as Payload<C>;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.address}: no ${c} within ${timeoutMs}ms; got ${this.inbox.map((m) => m.msg.case).join(',')}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  send(msg: NonNullable<MessageInitShape<typeof ConnectResponseSchema>['msg']>): void {
    this.calls.at(-1)!.write(create(ConnectResponseSchema, { msg }));
  }

  stop(): void {
    this.server.forceShutdown();
  }
}
