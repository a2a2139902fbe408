// Unary gRPC calls over Node's own HTTP/2, without grpc-js: for the listings
// (paging.ts), whose process would otherwise load grpc-js (0.6 MB of code to
// read, compile and run, ~50-100 ms of a short-lived CLI on a slow machine)
// and pass each call through its channel, resolver, load balancer and
// interceptor layers.
//
// It only ever takes the plain road: plain TCP to host:port, no proxy, one
// uncompressed message each way, status 0. On anything else, a failure to
// connect included, it gives up with H2_GAVE_UP and the caller makes the
// same call through grpc-js (paging.ts), so errors, TLS, proxies and every
// other case behave exactly as they always did. The calls it makes are reads
// (ListWorkers, ListTasks), which may safely be made twice.
import * as http2 from 'node:http2';

/** The call did not take the plain road; make it through grpc-js instead. */
export class H2GaveUp extends Error {}
export const H2_GAVE_UP = new H2GaveUp('h2-unary: not the plain road');

/** grpc-js's default limit on a received message; past it grpc-js fails the call, so it shall. */
const MAX_RECEIVE = 4 * 1024 * 1024;

/** Flow-control window, per stream and for the connection: a whole answer and then some. */
const WINDOW = 2 * MAX_RECEIVE;

/** host:port (an IPv6 host in brackets): nothing that grpc-js would read as a URI of another kind. */
const PLAIN_ADDRESS = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):\d{1,5}$/;

/** Whether calls to `address` can take the plain road: no TLS, and no proxy that grpc-js would use. */
export function plainRoad(address: string, tls: unknown, env: NodeJS.ProcessEnv): boolean {
  // grpc-js reads these from the process environment (http_proxy.ts).
  if (tls || env.grpc_proxy || env.https_proxy || env.http_proxy) return false;
  return PLAIN_ADDRESS.test(address);
}

/** One HTTP/2 connection to the manager, opened on the first call. */
export class H2Channel {
  private session: http2.ClientHttp2Session | undefined;
  private broken = false;
  /** Calls under way: while there are any, the connection keeps the process alive; idle, it never does. */
  private active = 0;

  constructor(readonly address: string) {}

  /** Opens the connection ahead of the first call. */
  dial(): void {
    this.connect();
  }

  /**
   * The answer's message bytes, or H2_GAVE_UP. `deadline` (ms since the
   * epoch) is sent as grpc-timeout and also ends the wait here.
   */
  unary(path: string, message: Uint8Array, deadline: number | undefined): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      if (this.broken) return reject(H2_GAVE_UP);
      const session = this.connect();
      const headers: http2.OutgoingHttpHeaders = {
        ':method': 'POST',
        ':path': path,
        'content-type': 'application/grpc',
        te: 'trailers',
      };
      let timer: NodeJS.Timeout | undefined;
      if (deadline !== undefined) {
        const left = deadline - Date.now();
        if (left <= 0) return reject(H2_GAVE_UP);
        headers['grpc-timeout'] = `${Math.ceil(left)}m`;
        timer = setTimeout(() => giveUp(), left);
      }
      let stream: http2.ClientHttp2Stream;
      try {
        stream = session.request(headers);
      } catch {
        // A connection closing as this started: not the plain road after all.
        clearTimeout(timer);
        return reject(H2_GAVE_UP);
      }
      if (this.active++ === 0) session.ref();
      const chunks: Buffer[] = [];
      let length = 0;
      let status: string | undefined;
      let ok = false;
      const giveUp = () => {
        clearTimeout(timer);
        if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
        reject(H2_GAVE_UP);
      };
      const grpcStatus = (h: http2.IncomingHttpHeaders) => {
        if (h['grpc-status'] !== undefined) status = String(h['grpc-status']);
      };
      stream.on('response', (h) => {
        const type = String(h['content-type'] ?? '');
        const encoding = h['grpc-encoding'];
        if (h[':status'] !== 200 || !type.startsWith('application/grpc') || (encoding !== undefined && encoding !== 'identity')) return giveUp();
        ok = true;
        grpcStatus(h); // a trailers-only answer carries its status in the headers
      });
      stream.on('trailers', grpcStatus);
      stream.on('data', (chunk: Buffer) => {
        length += chunk.length;
        if (length > MAX_RECEIVE + 5) return giveUp();
        chunks.push(chunk);
      });
      stream.on('error', giveUp);
      stream.on('close', () => {
        clearTimeout(timer);
        if (--this.active === 0) session.unref();
        const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length);
        // One uncompressed message, framed: flag 0, big-endian length, the bytes.
        if (!ok || status !== '0' || body.length < 5 || body[0] !== 0 || body.readUInt32BE(1) !== body.length - 5) return reject(H2_GAVE_UP);
        resolve(body.subarray(5));
      });
      const frame = Buffer.allocUnsafe(5 + message.length);
      frame[0] = 0;
      frame.writeUInt32BE(message.length, 1);
      frame.set(message, 5);
      stream.end(frame);
    });
  }

  close(): void {
    this.session?.close();
  }

  private connect(): http2.ClientHttp2Session {
    if (this.session && !this.session.destroyed && !this.session.closed) return this.session;
    // Windows as large as an answer may be: with HTTP/2's default 64 KiB the manager would
    // stop mid-page until this process, busy decoding the page before, acknowledged the rest.
    const session = http2.connect(`http://${this.address}`, { settings: { initialWindowSize: WINDOW } });
    session.on('connect', () => session.setLocalWindowSize(WINDOW));
    // A connection that fails (refused, reset) fails its calls with it; later calls go to grpc-js at once.
    session.on('error', () => {
      this.broken = true;
    });
    session.on('goaway', () => {
      this.broken = true;
    });
    // Idle, never what keeps the process alive (see `active`).
    session.unref();
    this.session = session;
    return session;
  }
}
