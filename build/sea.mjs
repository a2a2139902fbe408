// make dist: the standalone executables, dist/<program> for linux-x64, and
// dist/SHA256SUMS. Each is a copy of the pinned node binary (--node, the
// Makefile's NODE_VERSION) with a single executable application blob injected:
// the program bundled into one CommonJS file (sea-plugins.mjs) and, for
// management-node, lmdb's native addon as the asset lmdb.node. Nothing else is
// read at run time: a copy runs from any directory, node_modules or not.
//
//   node build/sea.mjs --node <node binary> [program...]
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { commanderLazyChildProcess, zodEnglishOnly } from './plugins.mjs';
import { bundleForSea } from './sea-plugins.mjs';

const ROOT = new URL('..', import.meta.url).pathname;
const DIST = join(ROOT, 'dist');
const WORK = join(ROOT, '.tmp', 'sea');
/** The fuse that tells node a blob is injected (Node's single-executable-applications docs). */
const FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const PROGRAMS = ['management-node', 'worker-node', 'schedctl'];
/** Native addons each program carries, by asset name (without .node) → the package whose prebuilt addon it is. */
const ADDONS = { 'management-node': { lmdb: 'lmdb' } };
const PLUGINS = { schedctl: [zodEnglishOnly, commanderLazyChildProcess] };

const { values, positionals } = parseArgs({ options: { node: { type: 'string' } }, allowPositionals: true });
if (!values.node) throw new Error('usage: node build/sea.mjs --node <node binary> [program...]');
const node = values.node;
const programs = positionals.length ? positionals : PROGRAMS;
const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
// The blob is specific to the node that makes it, which must be the one it is injected into.
const nodeVersion = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();

/** The prebuilt addon of pkg that `node` itself would load (its ABI, its libc), found by the loader the package uses. */
function addonPath(pkg) {
  const dir = join(ROOT, 'node_modules', pkg);
  const script = "const dir = process.argv[1]; console.log(require('module').createRequire(dir + '/')('node-gyp-build-optional-packages').path(dir));";
  return execFileSync(node, ['-e', script, dir], { encoding: 'utf8' }).trim();
}

/**
 * postject's CLI, in a process of its own: its ELF library warns about every
 * note section of node's binary ("Can't find string offset"), which is noise.
 */
function inject(file, blob) {
  const cli = join(ROOT, 'node_modules', 'postject', 'dist', 'cli.js');
  const r = spawnSync(process.execPath, [cli, file, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', FUSE], { encoding: 'utf8' });
  const said = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l && !/^warning: Can't find string offset/.test(l) && !/Start injection|Injection done/.test(l));
  if (r.status !== 0) throw new Error(`postject failed (${r.status ?? r.signal}): ${said.join('\n') || r.error?.message}`);
  for (const line of said) console.log(`postject: ${line}`);
}

async function buildOne(program) {
  const t0 = performance.now();
  const main = join(WORK, `${program}.cjs`);
  const blob = join(WORK, `${program}.blob`);
  await bundleForSea({ entry: join(ROOT, program, 'src', 'main.ts'), outfile: main, version, plugins: PLUGINS[program] ?? [] });
  const assets = Object.fromEntries(Object.entries(ADDONS[program] ?? {}).map(([name, pkg]) => [`${name}.node`, addonPath(pkg)]));
  const config = join(WORK, `${program}.sea.json`);
  // useCodeCache: V8's compiled code goes in the blob, so a start skips most compiling (measured in the report).
  writeFileSync(config, JSON.stringify({ main, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true, assets }, null, 2));
  // Its one line ("Wrote ... blob") is noise; a failure's message is in the error thrown.
  execFileSync(node, ['--experimental-sea-config', config], { stdio: 'pipe' });
  const tmp = join(DIST, `.${program}.tmp`);
  copyFileSync(node, tmp);
  chmodSync(tmp, 0o755);
  inject(tmp, blob);
  renameSync(tmp, join(DIST, program));
  console.log(`dist/${program}: ${nodeVersion}, ${Object.keys(assets).join(', ') || 'no assets'}, ${Math.round(performance.now() - t0)} ms`);
}

/** SHA256SUMS in sha256sum's format, for every program in dist/ (checked with `sha256sum -c SHA256SUMS` in dist/). */
function writeSums() {
  const lines = PROGRAMS.map((p) => `${createHash('sha256').update(readFileSync(join(DIST, p))).digest('hex')}  ${p}\n`);
  writeFileSync(join(DIST, 'SHA256SUMS'), lines.join(''));
}

mkdirSync(DIST, { recursive: true });
rmSync(WORK, { recursive: true, force: true });
mkdirSync(WORK, { recursive: true });
// One at a time: each injection holds a copy of the 120 MB node binary in memory, and the machine may be small.
for (const program of programs) await buildOne(program);
writeSums();
