// esbuild plugins shared by build.mjs (the bundles in */bin) and build/sea.mjs
// (the standalone executables in dist/).
import { dirname, join } from 'node:path';

/**
 * zod's `locales` namespace holds ~60 translations (0.4 MB) that nothing here
 * uses (zod itself loads English from en.js): keep only English. If zod moves
 * the file, nothing matches and the bundle is just bigger.
 */
export const zodEnglishOnly = {
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
 * commander requires node:child_process at load, only to spawn executable
 * subcommands (schedctl has none); child_process drags in net, dgram and the
 * stream wrappers, ~10 ms of Node's own module compiling at every start. Here
 * commander gets a stand-in that requires it on first use instead.
 */
export const commanderLazyChildProcess = {
  name: 'commander-lazy-child-process',
  setup(b) {
    b.onResolve({ filter: /^node:child_process$/ }, (args) =>
      /[\\/]node_modules[\\/]commander[\\/]/.test(args.importer) ? { path: 'child_process', namespace: 'lazy-child-process' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'lazy-child-process' }, () => ({
      contents: "module.exports = { spawn: (...args) => require('node:child_process').spawn(...args) };",
      loader: 'js',
    }));
  },
};
