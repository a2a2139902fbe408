import { Option, type Command } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROLES, type Role } from '../../../common/tls.js';
import { createCert, writePemFiles } from '../pki.js';
import type { Ctx } from './context.js';
import { parseDays } from './tls-ca-create.js';

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

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

export function registerTlsCertCreate(cert: Command, ctx: Ctx): void {
  cert
    .command('create')
    .description('creates a certificate signed by the cluster CA: <name>.pem and <name>-key.pem')
    .addOption(new Option('--role <role>', 'manager (serves), worker (may only Connect) or admin (schedctl)').choices(ROLES).makeOptionMandatory())
    .option('--name <name>', 'common name and file name (default: the role)')
    .option('--host <host>', 'DNS name or IP the manager is reached at (repeatable; default for a manager: localhost and 127.0.0.1)', collect)
    .option('--ca-dir <dir>', 'where ca.pem and ca-key.pem are', '.')
    .option('--dir <dir>', 'where to write the files', '.')
    .option('--days <n>', 'validity in days', parseDays, 365)
    .option('--force', 'overwrite existing files')
    .addHelpText(
      'after',
      `
Examples:
  schedctl tls ca create --dir /etc/sched/tls
  schedctl tls cert create --role manager --host manager.example.com --host 10.0.0.5 --ca-dir /etc/sched/tls --dir /etc/sched/tls
  schedctl tls cert create --role worker --name worker-17 --ca-dir /etc/sched/tls --dir ./worker-17
  schedctl tls cert create --role admin --ca-dir /etc/sched/tls --dir ~/.sched`,
    )
    .action(async (opts: CertOptions) => {
      const ca = { cert: readCaFile(join(opts.caDir, 'ca.pem')), key: readCaFile(join(opts.caDir, 'ca-key.pem')) };
      const name = opts.name ?? opts.role;
      const hosts = opts.host ?? (opts.role === 'manager' ? ['localhost', '127.0.0.1'] : []);
      const pem = await createCert(ca, { role: opts.role, name, hosts, days: opts.days });
      const written = writePemFiles(join(opts.dir, `${name}.pem`), join(opts.dir, `${name}-key.pem`), pem, opts.force ?? false);
      ctx.io.out(`${written.join('\n')}\n`);
    });
}
