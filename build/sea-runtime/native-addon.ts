// Native addons inside a standalone executable (build/sea.mjs). A single
// executable application carries lmdb's addon as an asset, but the kernel
// loads a shared object only from a file: the asset is written once to a
// directory only this user can write, named by its content hash, and loaded
// from there. A directory another user could write (or a symlink to one) is
// never used: whoever writes the file decides the code this process runs.
import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Names the directory to use before the defaults (e.g. where /tmp is mounted noexec). */
export const NATIVE_DIR_ENV = 'SCHED_NATIVE_DIR';

/** Where the addon may be written, in order: the operator's choice, the user's runtime directory, the temporary directory. */
export function candidateDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const uid = process.getuid?.() ?? 0;
  const dirs: string[] = [];
  if (env[NATIVE_DIR_ENV]) dirs.push(env[NATIVE_DIR_ENV]);
  if (env['XDG_RUNTIME_DIR']) dirs.push(join(env['XDG_RUNTIME_DIR'], 'sched-native'));
  dirs.push(join(tmpdir(), `sched-native-${uid}`));
  return dirs;
}

/** Makes dir (0700) if missing; throws unless it is a real directory of this user that no one else can write. */
export function privateDir(dir: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory (a symlink is not used)`);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) throw new Error(`${dir} belongs to uid ${st.uid}, not ${uid}`);
  if ((st.mode & 0o022) !== 0) throw new Error(`${dir} is writable by others (mode ${(st.mode & 0o777).toString(8)})`);
  return dir;
}

/**
 * Writes bytes as <dir>/<name>-<hash>.node in the first usable candidate and
 * returns its path. A file already there is used only if its bytes are these;
 * otherwise it is replaced (by rename, so a concurrent start never reads half a file).
 */
export function extractAddon(bytes: Uint8Array, name: string, dirs: readonly string[]): { path: string; skipped: string[] } {
  const hash = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
  const skipped: string[] = [];
  for (const candidate of dirs) {
    try {
      const dir = privateDir(candidate);
      const file = join(dir, `${name}-${hash}.node`);
      if (!sameBytes(file, bytes)) {
        const tmp = `${file}.${process.pid}.tmp`;
        writeFileSync(tmp, bytes, { mode: 0o600 });
        chmodSync(tmp, 0o600);
        renameSync(tmp, file);
      }
      return { path: file, skipped };
    } catch (err) {
      skipped.push(`${candidate}: ${(err as Error).message}`);
    }
  }
  throw new Error(`cannot write the ${name} native addon to any of: ${skipped.join('; ')} (set ${NATIVE_DIR_ENV} to a directory of this user on a filesystem that allows executables)`);
}

function sameBytes(file: string, bytes: Uint8Array): boolean {
  try {
    return Buffer.compare(readFileSync(file), bytes) === 0;
  } catch {
    return false;
  }
}

/**
 * Loads the executable's asset `name` as a native addon and returns its
 * exports. A candidate whose file the kernel refuses to map (a noexec mount)
 * is passed over for the next one.
 */
export function loadAssetAddon(name: string): unknown {
  // Only a single executable application has node:sea's assets; required here so that bundles without them never load it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const sea = require('node:sea') as typeof import('node:sea');
  const bytes = new Uint8Array(sea.getRawAsset(`${name}.node`));
  let dirs = candidateDirs();
  const failures: string[] = [];
  while (dirs.length > 0) {
    let extracted: ReturnType<typeof extractAddon>;
    try {
      extracted = extractAddon(bytes, name, dirs);
    } catch (err) {
      throw new Error([...failures, (err as Error).message].join('; '));
    }
    const { path, skipped } = extracted;
    failures.push(...skipped);
    const module = { exports: {} };
    try {
      process.dlopen(module, path);
      return module.exports;
    } catch (err) {
      failures.push(`${path}: ${(err as Error).message}`);
      const used = dirs.findIndex((d) => path.startsWith(`${d}/`));
      dirs = dirs.slice(used + 1);
    }
  }
  throw new Error(`cannot load the ${name} native addon: ${failures.join('; ')}`);
}
