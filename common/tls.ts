// Mutual TLS between the three programs. Every part presents a certificate
// signed by the cluster's CA (schedctl tls ca create / tls cert create); the
// certificate's role (its subject OU) says what it may call: a worker
// certificate can only Connect, an admin certificate only ManagementService.
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { z } from 'zod';
import { ConfigError } from './config.js';
import { ROLES, type Role } from './roles.js';

export { ROLES, type Role };

/** The `tls:` section of every config file: PEM files of the CA, this part's certificate and its key. */
export const tlsSchema = () => z.object({ ca: z.string().min(1), cert: z.string().min(1), key: z.string().min(1) }).strict();
export type TlsFiles = z.output<ReturnType<typeof tlsSchema>>;

interface TlsPem {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

function readPem(files: TlsFiles, section: string): TlsPem {
  const read = (field: keyof TlsFiles): Buffer => {
    try {
      return readFileSync(files[field]);
    } catch (err) {
      throw new ConfigError(`${section}.${field}: cannot read ${files[field]}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  return { ca: read('ca'), cert: read('cert'), key: read('key') };
}

/** Server credentials that require a client certificate signed by the CA. */
export function serverCredentials(files: TlsFiles, section = 'tls'): grpc.ServerCredentials {
  const pem = readPem(files, section);
  try {
    return grpc.ServerCredentials.createSsl(pem.ca, [{ cert_chain: pem.cert, private_key: pem.key }], true);
  } catch (err) {
    throw new ConfigError(`${section}: ${(err as Error).message}`);
  }
}

/**
 * Client credentials presenting this part's certificate and trusting only the CA. The manager's
 * certificate is checked against the address dialled (an IP SAN for 127.0.0.1:7070).
 */
export function clientCredentials(files: TlsFiles, section = 'tls'): grpc.ChannelCredentials {
  const pem = readPem(files, section);
  // grpc-js passes a dialled IP as the TLS server name, which Node reports (DEP0123) as a
  // stray stderr line on every connection; the certificate is still checked against the IP.
  process.noDeprecation = true;
  try {
    return grpc.credentials.createSsl(pem.ca, pem.key, pem.cert);
  } catch (err) {
    throw new ConfigError(`${section}: ${(err as Error).message}`);
  }
}

/** The role of the certificate a call was made with (undefined without TLS or a role). */
export function peerRole(call: { getAuthContext?: () => { sslPeerCertificate?: { subject?: Record<string, string | string[]> } } }): Role | undefined {
  const ou = call.getAuthContext?.().sslPeerCertificate?.subject?.OU;
  const values = Array.isArray(ou) ? ou : ou === undefined ? [] : [ou];
  return ROLES.find((r) => values.includes(r));
}

/** The name (subject CN) of the certificate a call was made with; undefined without TLS. */
export function peerName(call: { getAuthContext(): { sslPeerCertificate?: { subject?: Partial<Record<string, string | string[]>> } } }): string | undefined {
  const cert = call.getAuthContext().sslPeerCertificate;
  if (!cert) return undefined;
  const cn = cert.subject?.CN;
  return (Array.isArray(cn) ? cn[0] : cn) ?? '';
}

const article = (role: Role): string => `${/^[aeiou]/.test(role) ? 'an' : 'a'} ${role}`;

type AnyCall = { getAuthContext(): { sslPeerCertificate?: { subject?: Record<string, string | string[]> } }; emit(event: 'error', err: unknown): boolean };
type AnyHandler = (call: AnyCall, callback?: (err: Partial<grpc.StatusObject>) => void) => void;

/**
 * requireRole wraps every handler of a service so that, over TLS, only calls made with a
 * certificate of `role` get through; the others end with PERMISSION_DENIED naming both roles.
 */
export function requireRole<H extends object>(handlers: H, role: Role): H {
  const wrapped: Record<string, AnyHandler> = {};
  for (const [name, handler] of Object.entries(handlers) as Array<[string, AnyHandler]>) {
    wrapped[name] = (call, callback) => {
      const got = peerRole(call);
      if (got === role) return handler(call, callback);
      const status = {
        code: grpc.status.PERMISSION_DENIED,
        details: `this call needs ${article(role)} certificate; the caller presented ${got ? article(got) : 'no sched'} certificate`,
      };
      if (callback) callback(status);
      else call.emit('error', status);
    };
  }
  return wrapped as H;
}
