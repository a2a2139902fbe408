// Bundles each program: management-node and worker-node into one executable file,
// <part>/bin/<part>; schedctl into its executable entry, schedctl/bin/schedctl, plus the
// chunks it imports on demand, schedctl/bin/chunks/*.mjs (see buildSplit below).
// These run on the machine's node with node_modules beside them; build/sea.mjs
// (make dist) makes the standalone executables.
import { build } from 'esbuild';
import { chmodSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { commanderLazyChildProcess, zodEnglishOnly } from './build/plugins.mjs';

const { version } = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'));
const parts = process.argv.slice(2).length ? process.argv.slice(2) : ['management-node', 'worker-node', 'schedctl'];

const SHEBANG = '#!/usr/bin/env node\n';
/** esbuild's CommonJS shim calls `require` for Node built-ins: ESM has none, so every output file makes one. */
const REQUIRE_SHIM = "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);";

/**
 * Per-program additions. schedctl is started for every command, so its start
 * counts: every byte of what it loads is read and compiled at start, used or
 * not. grpc-js requires @grpc/proto-loader (and protobufjs, 0.3 MB) only for
 * the channelz and ORCA services, which a client never starts; left external,
 * it would come from node_modules if ever needed.
 */
const extra = {
  schedctl: { external: ['@grpc/proto-loader'], plugins: [zodEnglishOnly, commanderLazyChildProcess] },
};

const common = (part) => ({
  bundle: true,
  platform: 'node',
  target: 'node24',
  format: 'esm',
  // lmdb loads a native addon and etcd3 reads its .proto files from its package dir: both stay in node_modules.
  external: ['lmdb', 'etcd3', 'pino-pretty', ...(extra[part]?.external ?? [])],
  plugins: extra[part]?.plugins ?? [],
  define: { __SCHED_VERSION__: JSON.stringify(version) },
  legalComments: 'none',
  logLevel: 'warning',
});

/** One file: the daemons load all of their code at start anyway. */
async function buildOne(part) {
  const outfile = `${part}/bin/${part}`;
  await build({ ...common(part), entryPoints: [`${part}/src/main.ts`], outfile, banner: { js: `${SHEBANG}${REQUIRE_SHIM}` } });
  chmodSync(outfile, 0o755);
}

/**
 * schedctl, code-split: the entry holds only main.ts (and what it imports
 * statically); every import() becomes a chunk of its own that Node reads and
 * compiles only when it runs. As one file, all 2.4 MB (gRPC, zod, yaml, x509)
 * were read, decoded and compiled at every start, `--version` included.
 *
 * Layout: bin/schedctl (the executable entry, extensionless like the others)
 * imports ./chunks/<name>-<hash>.mjs. The chunks are .mjs so that they are ES
 * modules wherever bin/ is copied, package.json or not. Copy bin/ as a whole.
 *
 * A schedctl already running while this rebuilds may still import its old
 * chunks: new chunks are written first, then the entry (by rename, so it is
 * never half-written), and only then the chunks nothing refers to are removed.
 */
async function buildSplit(part) {
  const bin = `${part}/bin`;
  const chunks = join(bin, 'chunks');
  const result = await build({
    ...common(part),
    entryPoints: [{ in: `${part}/src/main.ts`, out: part }],
    outdir: bin,
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    outExtension: { '.js': '.mjs' },
    banner: { js: REQUIRE_SHIM },
    write: false,
  });
  const entry = join(bin, `${part}.mjs`);
  const keep = new Set();
  mkdirSync(chunks, { recursive: true });
  let entryText;
  for (const file of result.outputFiles) {
    const rel = file.path.slice(file.path.lastIndexOf(`${bin}/`) + bin.length + 1);
    if (rel === `${part}.mjs`) {
      entryText = file.text;
      continue;
    }
    if (dirname(rel) !== 'chunks') throw new Error(`build: unexpected output ${file.path}`);
    keep.add(basename(rel));
    writeFileSync(join(chunks, basename(rel)), file.contents);
  }
  if (entryText === undefined) throw new Error(`build: no ${entry} in esbuild's output`);
  const outfile = join(bin, part);
  const tmp = `${outfile}.tmp-${process.pid}`;
  writeFileSync(tmp, SHEBANG + entryText, { mode: 0o755 });
  chmodSync(tmp, 0o755);
  renameSync(tmp, outfile);
  for (const f of readdirSync(chunks)) if (!keep.has(f)) rmSync(join(chunks, f), { force: true });
}

/** Programs built code-split (see buildSplit). */
const SPLIT = new Set(['schedctl']);

await Promise.all(parts.map((part) => (SPLIT.has(part) ? buildSplit(part) : buildOne(part))));
