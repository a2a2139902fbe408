// The worker's data_dir, task logs and outbox hold task output and results:
// only the worker's user may read them, whatever the umask says.
import { chmodSync, fchmodSync, mkdirSync, statSync } from 'node:fs';

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** Creates dir (and missing parents) if needed, and makes it 0700 if its mode is anything else. */
export function privateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  // mkdir's mode is cut by the umask, and an existing directory keeps its mode: set it explicitly.
  if ((statSync(dir).mode & 0o777) !== PRIVATE_DIR_MODE) chmodSync(dir, PRIVATE_DIR_MODE);
}

/** Makes an open file 0600: open's mode is cut by the umask and does not apply to a file that existed. */
export function privateFile(fd: number): void {
  fchmodSync(fd, PRIVATE_FILE_MODE);
}
