import { join } from 'node:path';
import { createCa, printWritten, writePemFiles } from '../pki.js';
import type { Ctx } from './context.js';

export { parseDays } from '../flags.js';

/** `schedctl tls ca create` (registered in registry.ts). */
export async function tlsCaCreate(ctx: Ctx, opts: { dir: string; name: string; days: number; force?: boolean }): Promise<void> {
  const pem = await createCa(opts.name, opts.days);
  const written = writePemFiles(join(opts.dir, 'ca.pem'), join(opts.dir, 'ca-key.pem'), pem, opts.force ?? false);
  printWritten(ctx, written);
}
