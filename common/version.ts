// Replaced by esbuild at build time; tsx runs see the package version fallback.
declare const __SCHED_VERSION__: string | undefined;
export const VERSION: string = typeof __SCHED_VERSION__ === 'string' ? __SCHED_VERSION__ : '0.0.0-dev';
