// Certificates made by schedctl's pki, and the role check the manager puts in
// front of each service.
import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { clientCredentials, peerRole, requireRole } from '../../common/tls.js';
import { createCa, createCert, writePemFiles } from '../../schedctl/src/pki.js';

const callWith = (ou?: string) => {
  const errors: unknown[] = [];
  return {
    errors,
    getAuthContext: () => (ou === undefined ? {} : { sslPeerCertificate: { subject: { CN: 'x', OU: ou, O: 'sched' } } }),
    emit: (_: 'error', err: unknown) => errors.push(err) > 0,
  };
};

describe('tls: certificates and roles', () => {
  it('signs role certificates with the CA: subject OU is the role, SANs for the manager, right key usages', async () => {
    const ca = await createCa('test CA', 30);
    const caCert = new X509Certificate(ca.cert);
    expect(caCert.ca).to.equal(true);
    const manager = new X509Certificate((await createCert(ca, { role: 'manager', name: 'm1', hosts: ['127.0.0.1', 'mgr.example'], days: 1 })).cert);
    expect(manager.subject.split('\n')).to.deep.equal(['CN=m1', 'OU=manager', 'O=sched']);
    expect(manager.subjectAltName).to.equal('IP Address:127.0.0.1, DNS:mgr.example');
    expect(manager.checkIssued(caCert) && manager.verify(caCert.publicKey)).to.equal(true);
    expect(manager.keyUsage).to.include('1.3.6.1.5.5.7.3.1'); // serverAuth
    const worker = new X509Certificate((await createCert(ca, { role: 'worker', name: 'w, "odd"', hosts: [], days: 1 })).cert);
    expect(worker.subject).to.include('OU=worker');
    expect(worker.keyUsage).to.deep.equal(['1.3.6.1.5.5.7.3.2']); // clientAuth only
    expect(worker.subjectAltName).to.equal(undefined);
    expect(Date.parse(worker.validTo) - Date.now()).to.be.within(23 * 3600_000, 25 * 3600_000);
  });

  it('writes keys readable by the owner only and refuses to overwrite without force', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sched-pki-'));
    try {
      const pem = await createCa('c', 1);
      writePemFiles(join(dir, 'sub', 'ca.pem'), join(dir, 'sub', 'ca-key.pem'), pem, false);
      expect(statSync(join(dir, 'sub', 'ca-key.pem')).mode & 0o777).to.equal(0o600);
      expect(() => writePemFiles(join(dir, 'sub', 'ca.pem'), join(dir, 'sub', 'ca-key.pem'), pem, false)).to.throw(/exists; use --force/);
      expect(() => writePemFiles(join(dir, 'sub', 'ca.pem'), join(dir, 'sub', 'ca-key.pem'), pem, true)).to.not.throw();
      // The client side reads the files and names the one it cannot read.
      writeFileSync(join(dir, 'k.pem'), pem.key);
      expect(() => clientCredentials({ ca: join(dir, 'sub', 'ca.pem'), cert: join(dir, 'nope.pem'), key: join(dir, 'k.pem') }, 'tls')).to.throw(
        /^tls\.cert: cannot read .*nope\.pem: ENOENT$/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--force over a key file left 0644 or 0666 leaves it 0600, whatever the umask; the certificate 0644', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sched-pki-'));
    const umask = process.umask(0o022);
    try {
      const pem = await createCa('c', 1);
      for (const loose of [0o644, 0o666]) {
        const cert = join(dir, 'ca.pem');
        const key = join(dir, 'ca-key.pem');
        writeFileSync(key, 'old key\n');
        writeFileSync(cert, 'old cert\n');
        chmodSync(key, loose);
        chmodSync(cert, loose);
        writePemFiles(cert, key, pem, true);
        expect(statSync(key).mode & 0o777, loose.toString(8)).to.equal(0o600);
        expect(readFileSync(key, 'utf8')).to.equal(pem.key);
        expect(readFileSync(cert, 'utf8')).to.equal(pem.cert);
        expect(statSync(cert).mode & 0o777, 'the certificate').to.equal(0o644);
      }
      // No temporary file is left behind.
      expect(readdirSync(dir).sort()).to.deep.equal(['ca-key.pem', 'ca.pem']);
      // Under a permissive umask a new key is 0600 too.
      process.umask(0);
      writePemFiles(join(dir, 'n.pem'), join(dir, 'n-key.pem'), pem, false);
      expect(statSync(join(dir, 'n-key.pem')).mode & 0o777).to.equal(0o600);
    } finally {
      process.umask(umask);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads the role from the peer certificate, and lets only that role through', () => {
    expect(peerRole(callWith('worker'))).to.equal('worker');
    expect(peerRole(callWith('somebody'))).to.equal(undefined);
    expect(peerRole(callWith())).to.equal(undefined);

    const seen: string[] = [];
    const guarded = requireRole(
      {
        unary: (_call: unknown, cb: (err: unknown, res?: unknown) => void) => {
          seen.push('unary');
          cb(null, 'ok');
        },
        stream: () => void seen.push('stream'),
      },
      'admin',
    ) as unknown as Record<string, (call: ReturnType<typeof callWith>, cb?: (err: { code?: number; details?: string } | null) => void) => void>;
    let denied: { code?: number; details?: string } | null = null;
    guarded.unary!(callWith('worker'), (err) => (denied = err));
    expect(denied).to.deep.equal({ code: grpc.status.PERMISSION_DENIED, details: 'this call needs an admin certificate; the caller presented a worker certificate' });
    const streamCall = callWith();
    guarded.stream!(streamCall);
    expect(streamCall.errors).to.deep.equal([{ code: grpc.status.PERMISSION_DENIED, details: 'this call needs an admin certificate; the caller presented no sched certificate' }]);
    guarded.unary!(callWith('admin'), () => undefined);
    guarded.stream!(callWith('admin'));
    expect(seen).to.deep.equal(['unary', 'stream']);
  });
});
