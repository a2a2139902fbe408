// esbuild plugins for the standalone executables (build/sea.mjs). Node 24's
// single executable applications run one CommonJS script and can require only
// Node's built-in modules, so everything else must be inside that one file.
import { build, transform } from 'esbuild';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const ADDON_LOADER = fileURLToPath(new URL('./sea-runtime/native-addon.ts', import.meta.url));

/**
 * The programs' main.ts files use top-level await, which CommonJS has not.
 * Their statements (after the imports) run inside an async function instead;
 * a rejection is thrown again outside it, so it ends the program with the
 * stack printed and exit code 1, as an uncaught top-level await does.
 */
export const mainWithoutTopLevelAwait = {
  name: 'main-without-top-level-await',
  setup(b) {
    b.onLoad({ filter: /[\\/](management-node|worker-node|schedctl)[\\/]src[\\/]main\.ts$/ }, async (args) => {
      const { code } = await transform(await readFile(args.path, 'utf8'), { loader: 'ts', format: 'esm', sourcefile: args.path });
      const lines = code.split('\n');
      // esbuild prints each import on one line, first; anything exported could not live in a function.
      const imports = lines.filter((l) => l.startsWith('import '));
      const body = lines.filter((l) => !l.startsWith('import '));
      if (body.some((l) => l.startsWith('export '))) throw new Error(`${args.path}: an entry point that exports cannot be wrapped`);
      return {
        contents: `${imports.join('\n')}\n(async () => {\n${body.join('\n')}\n})().catch((err) => process.nextTick(() => { throw err; }));\n`,
        loader: 'js',
      };
    });
  },
};

/**
 * lmdb, in its CommonJS build (the ESM one finds its files by import.meta.url),
 * with its native addon from the executable's asset `lmdb.node`
 * (sea-runtime/native-addon.ts) instead of node-gyp-build's search of
 * node_modules. msgpackr's optional accelerator is left out: the store keeps
 * binary values, which msgpackr does not decode.
 */
export const lmdbFromAsset = {
  name: 'lmdb-from-asset',
  setup(b) {
    b.onResolve({ filter: /^lmdb$/ }, (args) =>
      args.pluginData === 'lmdb-cjs' ? undefined : b.resolve('lmdb', { kind: 'require-call', resolveDir: args.resolveDir, pluginData: 'lmdb-cjs' }),
    );
    b.onResolve({ filter: /^node-gyp-build-optional-packages$/ }, (args) =>
      /[\\/]node_modules[\\/]lmdb[\\/]/.test(args.importer) ? { path: 'lmdb', namespace: 'sea-addon' } : undefined,
    );
    b.onResolve({ filter: /^msgpackr-extract$/ }, () => ({ path: 'msgpackr-extract', namespace: 'sea-absent' }));
    b.onLoad({ filter: /.*/, namespace: 'sea-addon' }, (args) => ({
      contents: `const { loadAssetAddon } = require(${JSON.stringify(ADDON_LOADER)}); module.exports = () => loadAssetAddon(${JSON.stringify(args.path)});`,
      loader: 'js',
      resolveDir: fileURLToPath(new URL('.', import.meta.url)),
    }));
    b.onLoad({ filter: /.*/, namespace: 'sea-absent' }, (args) => ({
      contents: `throw new Error(${JSON.stringify(`${args.path} is not part of this executable`)});`,
      loader: 'js',
    }));
  },
};

/**
 * etcd3 reads its .proto files from its package directory when it loads;
 * here they are parsed at build time (as its proto-loader would, keepCase)
 * and the result is inlined for proto-loader's fromJSON. An etcd3 that loads
 * them otherwise fails the build rather than the executable.
 */
export const etcd3InlineProtos = {
  name: 'etcd3-inline-protos',
  setup(b) {
    b.onLoad({ filter: /[\\/]node_modules[\\/]etcd3[\\/]lib[\\/]connection-pool\.js$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      const call = '(0, proto_loader_1.loadSync)(`${__dirname}/../proto/rpc.proto`, {';
      if (!source.includes(call)) throw new Error(`${args.path}: etcd3 no longer loads proto/rpc.proto as build/sea-plugins.mjs expects`);
      const protobuf = createRequire(createRequire(args.path).resolve('@grpc/proto-loader'))('protobufjs');
      const root = new protobuf.Root();
      root.loadSync(fileURLToPath(new URL('../proto/rpc.proto', `file://${args.path}`)), { keepCase: true });
      return { contents: source.replace(call, `(0, proto_loader_1.fromJSON)(${JSON.stringify(root.toJSON())}, {`), loader: 'js' };
    });
  },
};

/** Bundles entry into one CommonJS file for a single executable application. */
export async function bundleForSea({ entry, outfile, version, plugins }) {
  return build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node24',
    format: 'cjs',
    plugins: [mainWithoutTopLevelAwait, lmdbFromAsset, etcd3InlineProtos, ...plugins],
    // pino-pretty is optional to pino and not used (common/logger.ts renders its own lines).
    external: ['pino-pretty'],
    define: { __SCHED_VERSION__: JSON.stringify(version) },
    legalComments: 'none',
    logLevel: 'warning',
    metafile: true,
  });
}
