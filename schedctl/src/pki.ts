// Certificates for mutual TLS: a cluster CA and, signed by it, one
// certificate per part whose subject OU is its role (manager, worker, admin).
// ECDSA P-256 keys, PEM files; the keys are written readable by the owner only.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { randomBytes, webcrypto } from 'node:crypto';
import { chmodSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { isIP } from 'node:net';
import type { Role } from '../../common/tls.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 24 * 3600_000;

export interface Pem {
  cert: string;
  key: string;
}

const serial = (): string => {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f; // a positive INTEGER
  return bytes.toString('hex');
};

async function keyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  const body = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN PRIVATE KEY-----\n${body}\n-----END PRIVATE KEY-----\n`;
}

function pemBody(pem: string, label: string): Uint8Array<ArrayBuffer> {
  const m = new RegExp(`-----BEGIN ${label}-----([\\s\\S]+?)-----END ${label}-----`).exec(pem);
  if (!m) throw new Error(`expected a PEM ${label}`);
  return new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
}

/** The attribute values of a distinguished name, escaped for x509's name parser. */
const dnValue = (v: string): string => v.replace(/([,+"\\<>;=])/g, '\\$1');

export async function createCa(name: string, days: number): Promise<Pem> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${dnValue(name)}, O=sched`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + days * DAY_MS),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString('pem') + '\n', key: await keyPem(keys.privateKey) };
}

export interface CertRequest {
  role: Role;
  name: string;
  /** DNS names and IP addresses the certificate is valid for (the manager's listen address). */
  hosts: string[];
  days: number;
}

export async function createCert(ca: Pem, req: CertRequest): Promise<Pem> {
  const caCert = new x509.X509Certificate(pemBody(ca.cert, 'CERTIFICATE'));
  const caKey = await webcrypto.subtle.importKey('pkcs8', pemBody(ca.key, 'PRIVATE KEY'), ALG, false, ['sign']);
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  // A manager serves (and may dial); workers and admins only dial.
  const usages = req.role === 'manager' ? [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth] : [x509.ExtendedKeyUsage.clientAuth];
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(usages, false),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(caCert),
  ];
  if (req.hosts.length > 0) {
    extensions.push(new x509.SubjectAlternativeNameExtension(req.hosts.map((h) => ({ type: (isIP(h) ? 'ip' : 'dns') as x509.GeneralNameType, value: h }))));
  }
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${dnValue(req.name)}, OU=${req.role}, O=sched`,
    issuer: caCert.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + req.days * DAY_MS),
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    // Node's CryptoKey (@types/node 24: usages include encapsulateBits) as the DOM's that x509 names: the same object.
    signingKey: caKey as CryptoKey,
    extensions,
  });
  return { cert: cert.toString('pem') + '\n', key: await keyPem(keys.privateKey) };
}

/**
 * Writes text to path with exactly this mode, whatever the umask and whatever
 * the mode of a file it replaces: a new file next to it, renamed over it (a
 * mode given to writeFile applies only to a file it creates, so overwriting a
 * 0644 key in place would leave it 0644). Readers never see half a file.
 */
export function writeFileWithMode(path: string, text: string, mode: number): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    try {
      chmodSync(tmp, mode); // the umask may have taken bits away
      writeFileSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** Writes a certificate and its key, never over an existing file unless forced; the key readable by the owner only. */
export function writePemFiles(certPath: string, keyPath: string, pem: Pem, force: boolean): string[] {
  if (!force) {
    for (const path of [certPath, keyPath]) {
      if (existsSync(path)) throw new Error(`${path} exists; use --force to overwrite it`);
    }
  }
  mkdirSync(dirname(certPath), { recursive: true });
  mkdirSync(dirname(keyPath), { recursive: true });
  writeFileWithMode(certPath, pem.cert, 0o644);
  writeFileWithMode(keyPath, pem.key, 0o600);
  return [certPath, keyPath];
}

/**
 * Prints the files a tls command wrote: their paths one a line (table, wide, name), or as
 * data under json and yaml ({files: [...]}), as every command prints data there.
 */
export function printWritten(ctx: { settings(): { output: string }; io: { out(text: string): void } }, written: readonly string[]): void {
  const output = ctx.settings().output;
  if (output === 'json') ctx.io.out(`${JSON.stringify({ files: written }, null, 2)}\n`);
  else if (output === 'yaml') ctx.io.out(`files:\n${written.map((f) => `  - ${JSON.stringify(f)}\n`).join('')}`);
  else ctx.io.out(`${written.join('\n')}\n`);
}
