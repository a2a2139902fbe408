// worker-node's entry point. The bundle is one file, so the task watchdog
// (watchdog.ts) runs from this same program as a hidden subcommand, which
// needs no other file to exist; the daemon is imported only when it is not the
// watchdog, so the watchdog stays small (esbuild keeps dynamic imports lazy).
import { runWatchdog, WATCHDOG_COMMAND } from './watchdog.js';

if (process.argv[2] === WATCHDOG_COMMAND) runWatchdog(process.argv.slice(3));
else await import('./daemon.js');
