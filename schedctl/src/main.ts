// schedctl entry point: the operator's CLI for the management node.
//
// Start-up time: this file is all of bin/schedctl that Node reads at start;
// the rest of the program comes in through the import() below, as chunks of
// their own (build.mjs splits schedctl), so this imports nothing else
// statically but the version string.
import { VERSION } from '../../common/version.js';

// `schedctl tasks ls | head` closes the pipe early; that is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

const argv = process.argv.slice(2);
if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) {
  // Exactly what commander prints for the program's .version() (cli.ts), and
  // exit 0, without loading commander and the program: the bare version
  // query is what scripts and health checks run. Anything else, even with
  // options before it, takes the ordinary path (test/unit/schedctl-start.test.ts
  // compares the two).
  process.stdout.write(`${VERSION}\n`);
} else {
  const { runCli } = await import('./cli.js');
  // exitCode rather than process.exit(): pending stdout writes still get flushed.
  process.exitCode = await runCli(argv, {
    out: (text) => process.stdout.write(text),
    write: (data) => process.stdout.write(data),
    err: (text) => process.stderr.write(text),
    isTTY: process.stdout.isTTY === true,
    errIsTTY: process.stderr.isTTY === true,
    env: process.env,
  });
}
