import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Role } from '../../../common/roles.js';
import { createCert, printWritten, writePemFiles } from '../pki.js';
import type { Ctx } from './context.js';

function readCaFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (create the CA first: schedctl tls ca create)`);
  }
}

interface CertOptions {
  role: Role;
  name?: string;
  host?: string[];
  caDir: string;
  dir: string;
  days: number;
  force?: boolean;
}

/** `schedctl tls cert create` (registered in registry.ts). */
export async function tlsCertCreate(ctx: Ctx, opts: CertOptions): Promise<void> {
  const ca = { cert: readCaFile(join(opts.caDir, 'ca.pem')), key: readCaFile(join(opts.caDir, 'ca-key.pem')) };
  const name = opts.name ?? opts.role;
  const hosts = opts.host ?? (opts.role === 'manager' ? ['localhost', '127.0.0.1'] : []);
  const pem = await createCert(ca, { role: opts.role, name, hosts, days: opts.days });
  const written = writePemFiles(join(opts.dir, `${name}.pem`), join(opts.dir, `${name}-key.pem`), pem, opts.force ?? false);
  printWritten(ctx, written);
}
