// Bundles each program into one executable file: <part>/bin/<part>.
import { build } from 'esbuild';
import { chmodSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

const { version } = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'));
const parts = process.argv.slice(2).length ? process.argv.slice(2) : ['management-node', 'worker-node', 'schedctl'];

/**
 * zod's `locales` namespace holds ~60 translations (0.4 MB) that nothing here
 * uses (zod itself loads English from en.js): keep only English. If zod moves
 * the file, nothing matches and the bundle is just bigger.
 */
const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(b) {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      /[\\/]node_modules[\\/]zod[\\/]/.test(args.importer)
        ? { path: join(dirname(args.importer), '../locales/index.js'), namespace: 'zod-english-only' }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'zod-english-only' }, (args) => ({
      contents: "export { default as en } from './en.js';",
      resolveDir: dirname(args.path),
    }));
  },
};

/**
 * Per-program additions. schedctl is started for every command, so its start
 * counts: every byte of the bundle is parsed at start, used or not.
 * grpc-js requires @grpc/proto-loader (and protobufjs, 0.3 MB) only for the
 * channelz and ORCA services, which a client never starts; left external, it
 * would come from node_modules if ever needed.
 */
const extra = {
  schedctl: { external: ['@grpc/proto-loader'], plugins: [zodEnglishOnly] },
};

await Promise.all(
  parts.map(async (part) => {
    const outfile = `${part}/bin/${part}`;
    await build({
      entryPoints: [`${part}/src/main.ts`],
      outfile,
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'esm',
      // lmdb loads a native addon and etcd3 reads its .proto files from its package dir: both stay in node_modules.
      external: ['lmdb', 'etcd3', 'pino-pretty', ...(extra[part]?.external ?? [])],
      plugins: extra[part]?.plugins ?? [],
      banner: {
        js: "#!/usr/bin/env node\nimport { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
      },
      define: { __SCHED_VERSION__: JSON.stringify(version) },
      legalComments: 'none',
      logLevel: 'warning',
    });
    chmodSync(outfile, 0o755);
  }),
);
