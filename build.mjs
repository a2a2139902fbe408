// Bundles each program into one executable file: <part>/bin/<part>.
import { build } from 'esbuild';
import { chmodSync, readFileSync } from 'node:fs';

const { version } = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'));
const parts = process.argv.slice(2).length ? process.argv.slice(2) : ['management-node', 'worker-node', 'schedctl'];

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
      external: ['lmdb', 'etcd3', 'pino-pretty'],
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
