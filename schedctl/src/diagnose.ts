// Why schedctl could not reach the management node, when grpc-js only says
// "Failed to connect": a plain connection to a manager that wants TLS ends
// that way (the manager drops what is not a TLS handshake). A TLS handshake
// of our own, answered or refused by a TLS alert, tells the two apart.
// Loaded only on that error.
import { connect } from 'node:tls';

/** How long the probe may take: the command has already failed; this only names the cause. */
const PROBE_MS = 1500;

/** host:port (an IPv6 host in brackets) → [host, port]; undefined for anything else. */
function split(address: string): [string, number] | undefined {
  const m = /^\[?([^\]]*?)\]?:(\d{1,5})$/.exec(address.trim());
  return m ? [m[1]!, Number(m[2])] : undefined;
}

/** Whether `address` answers a TLS handshake (completed, or refused with a TLS alert). */
export function speaksTls(address: string): Promise<boolean> {
  const hostPort = split(address);
  if (!hostPort) return Promise.resolve(false);
  const [host, port] = hostPort;
  return new Promise((resolve) => {
    let done = false;
    const finish = (answer: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    // Only to see whether the other end speaks TLS: nothing is sent past the handshake.
    const socket = connect({ host, port, rejectUnauthorized: false, ALPNProtocols: ['h2'], ...(/^[\d.:]+$/.test(host) ? {} : { servername: host }) });
    const timer = setTimeout(() => finish(false), PROBE_MS);
    socket.once('secureConnect', () => finish(true));
    socket.once('error', (err: NodeJS.ErrnoException) => {
      // An alert from the server (e.g. it wants a client certificate) is TLS too; a reset or a
      // "wrong version number" (it answered in plain text) is not.
      finish(/alert|certificate/i.test(err.message) && !/wrong version number/i.test(err.message));
    });
  });
}
