// The embedded store serves one manager: a second management-node started on
// the same directory is refused, naming the first (several managers need
// etcd). The lock is a file holding the owner's pid; one left by a process
// that is gone is taken over.
import { openSync, readFileSync, unlinkSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../../../common/config.js';

const LOCK_FILE = 'manager.pid';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the directory for this process; returns the release function. */
export function lockStoreDir(dir: string): () => void {
  const path = join(dir, LOCK_FILE);
  for (let tries = 0; ; tries++) {
    let fd: number;
    try {
      fd = openSync(path, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || tries > 0) throw err;
      const pid = Number(readFileSync(path, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw new ConfigError(
          `store: the embedded store ${dir} is in use by another management-node (pid ${pid}); it serves one manager. To run several managers, use etcd (store: {type: etcd, endpoints: [...]})`,
        );
      }
      unlinkSync(path); // left by a process that is gone
      continue;
    }
    writeSync(fd, `${process.pid}\n`);
    closeSync(fd);
    return () => {
      try {
        if (readFileSync(path, 'utf8').trim() === String(process.pid)) unlinkSync(path);
      } catch {
        // gone already
      }
    };
  }
}
