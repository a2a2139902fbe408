// The worker id must survive restarts: the manager keys the worker's record,
// and the tasks it reconciles after a reconnect, on it.
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export function loadWorkerId(idFile: string): string {
  try {
    const id = readFileSync(idFile, 'utf8').trim();
    if (id) return id;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const id = randomUUID();
  mkdirSync(dirname(idFile), { recursive: true });
  // Write then rename, so a crash mid-write never leaves an empty or torn id.
  const tmp = `${idFile}.${process.pid}.tmp`;
  writeFileSync(tmp, `${id}\n`, { mode: 0o644 });
  renameSync(tmp, idFile);
  return id;
}
