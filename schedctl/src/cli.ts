// The schedctl program: global options, help, and the one place where errors
// become a message on stderr and an exit code.
//
// Start-up time: only commander is loaded up front (main.ts loads this file
// only when it is more than a bare `--version`). The commands, config, client
// and printers (and with them gRPC, protobuf, zod, yaml, x509) come through
// import(), which esbuild turns into chunks of their own that Node reads and
// compiles only when imported (build.mjs). The registry (names, options, help
// texts) is loaded for everything but `--version`; the config, client and
// printer only when a command runs (runtime.ts), and each command's own module
// only when it is the one that runs (see commands/registry.ts).
import type { ServiceError } from '@grpc/grpc-js';
import { Command, CommanderError, Help, Option } from 'commander';
import { VERSION } from '../../common/version.js';
import type { ManagementClient } from './client.js';
import type { CliIo, Ctx, Settings } from './commands/context.js';
import { CONFIG_ENV, DEFAULT_CONFIG_PATH } from './config-paths.js';
import { OUTPUT_FORMATS, type OutputFormat } from './printers/formats.js';
import type { Runtime } from './runtime.js';

export type { CliIo } from './commands/context.js';

/** Exit codes: 0 ok, 1 the management node failed or is unreachable, 2 usage or config error. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

interface GlobalOptions {
  config?: string;
  verbose?: boolean;
  manager?: string;
  output: OutputFormat;
}

/**
 * `schedctl` or `schedctl tasks` without a command asks for help; it is not a
 * mistake (commander would print help on stderr and exit 1).
 */
class SchedCommand extends Command {
  override createCommand(name?: string): Command {
    return new SchedCommand(name);
  }
  override help(): never {
    return super.help();
  }
}

function section(title: string, rows: Array<[string, string]>): string {
  const width = Math.max(...rows.map(([term]) => term.length)) + 2;
  return `${title}:\n${rows.map(([term, text]) => `  ${term.padEnd(width)}${text}`.trimEnd()).join('\n')}\n`;
}

/** The top-level usage text, after go-schedule's. */
function rootHelp(cmd: Command, helper: Help): string {
  const options = helper.visibleOptions(cmd).map((o): [string, string] => [helper.optionTerm(o), helper.optionDescription(o)]);
  const targets = helper
    .visibleCommands(cmd)
    .filter((c) => c.name() !== 'help')
    .map((c): [string, string] => [c.name(), c.description()]);
  return [
    'schedctl - is the utility that schedules running of arbitrary linux jobs\non the cluster of remote linux machines (workers).\n',
    'usage:\n  schedctl [options] [target] [target cmd] [target cmd parameters]\n',
    section('options', options),
    `${section('targets', targets)}  for more information on each target: schedctl [target] help\n`,
    section('examples', [
      ['schedctl workers ls', 'shows all the remote linux machines that were and are connected'],
      ['schedctl tasks run -- echo hello', 'schedules a task on a worker and prints its id'],
      ['schedctl tasks run --wait -- make test', "waits for the task and exits with the task's exit code"],
      ['schedctl tasks run --count 10 --cpu 0.5 --mem 256Mi -- ./job', 'ten copies, each reserving half a core and 256Mi'],
      ['schedctl tasks ls --state dead', 'lists the tasks that will never run, and why'],
      ['schedctl -o json tasks show ID', 'prints one task as JSON'],
      ['schedctl tasks cancel ID', 'stops a task; it ends dead with reason cancelled'],
    ]),
    `config: -c FILE, else $${CONFIG_ENV}, else ${DEFAULT_CONFIG_PATH} if it exists, else defaults\n(manager 127.0.0.1:7070, timeout 10s).\n`,
  ].join('\n');
}

function createProgram(io: CliIo): Command {
  const program = new SchedCommand('schedctl');
  // Settings below are inherited by the commands registered afterwards.
  program
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.out(s),
      writeErr: (s) => io.err(s),
      outputError: (s, write) => write(s.replace(/^error: /, 'schedctl: ')),
      getOutHelpWidth: () => 100,
      getErrHelpWidth: () => 100,
      getOutHasColors: () => false,
      getErrHasColors: () => false,
    })
    .showHelpAfterError("(run 'schedctl help' for usage)")
    .configureHelp({
      showGlobalOptions: true,
      // Only the root gets the custom text; targets use commander's layout.
      formatHelp: (cmd, helper) => (cmd.parent ? Help.prototype.formatHelp.call(helper, cmd, helper) : rootHelp(cmd, helper)),
    })
    .option('-c, --config <file>', `config file (default: $${CONFIG_ENV} or ${DEFAULT_CONFIG_PATH})`)
    .option('-v, --verbose', 'debug output on stderr (config file, manager address, stack traces)')
    .option('--manager <host:port>', 'management node address (several: a:7070,b:7070), overrides $SCHED_MANAGER and the config')
    .addOption(new Option('-o, --output <format>', 'output format').choices(OUTPUT_FORMATS).default('table'))
    .version(VERSION, '-V, --version', 'print the schedctl version')
    .helpOption('-h, --help', 'print this help');
  return program;
}

function isRpcError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === 'number' && 'details' in err;
}

/** Commander codes for help/version: printed on request, so not failures. */
const COMMANDER_OK = new Set(['commander.help', 'commander.helpDisplayed', 'commander.version']);

/** Program options that take a value (as the next argument). */
const VALUE_OPTIONS = new Set(['-c', '--config', '--manager', '-o', '--output']);
const FLAG_OPTIONS = new Set(['-v', '--verbose']);

/**
 * Whether commander answers `--version` before reaching any target: only
 * program options precede it. Then the commands need not be loaded. Anything
 * this does not recognise takes the ordinary path, which is always right.
 */
export function versionOnly(argv: readonly string[]): boolean {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-V' || arg === '--version') return true;
    if (VALUE_OPTIONS.has(arg)) i++;
    else if (!FLAG_OPTIONS.has(arg) && !/^--(config|manager|output)=/.test(arg)) return false;
  }
  return false;
}

/** The commands' registration, loaded on demand (see the top of this file). */
async function loadCommands() {
  const registry = await import('./commands/registry.js');
  return {
    registerCommands: registry.registerCommands,
    isLean: registry.isLean,
    preloadLean: registry.preloadLean,
  };
}

/** Runs schedctl with the arguments after the program name; resolves to the exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  // `--version` needs no commands; the help texts of its program are never shown.
  const commands = versionOnly(argv) ? undefined : await loadCommands();
  let runtime: Runtime | undefined;
  const loaded = (): Runtime => {
    if (!runtime) throw new Error('commands not loaded');
    return runtime;
  };
  const program = createProgram(io);
  const opts = (): GlobalOptions => program.opts<GlobalOptions>();
  let settings: Settings | undefined;
  let client: ManagementClient | undefined;
  /** Clients of single managers (clientOf), closed with the run. */
  const others: ManagementClient[] = [];
  let exitCode = EXIT_OK;

  const ctx: Ctx = {
    io,
    settings() {
      if (!settings) {
        const { output, verbose } = opts();
        settings = { ...loaded().resolveConfig(), output, verbose: verbose === true };
        ctx.debug(`config: ${settings.source}; manager: ${settings.manager}; timeout: ${settings.timeout}ms`);
      }
      return settings;
    },
    client() {
      client ??= loaded().createClient(ctx.settings().manager, ctx.settings().tls);
      return client;
    },
    clientOf(address) {
      const c = loaded().createClient(address, ctx.settings().tls);
      others.push(c);
      return c;
    },
    unary: () => ({ deadlineMs: ctx.settings().timeout }),
    unaryBytes: (method, req) =>
      loaded().unaryBytes(ctx.settings(), method, req, ctx.unary().deadlineMs, async () => {
        await loaded().loadClient();
        return ctx.client();
      }),
    print(view) {
      // The printer of opts().output, which settings().output is.
      ctx.settings();
      io.out(loaded().printer(view));
    },
    debug(message) {
      if (opts().verbose) io.err(`schedctl: debug: ${message}\n`);
    },
    exit(code) {
      exitCode = code;
    },
  };
  commands?.registerCommands(program, ctx);
  // Before any command's action (hooks of the program run for every subcommand).
  program.hook('preAction', async (_program, command) => {
    const { config, manager, output } = opts();
    const lean = commands?.isLean(command) === true;
    if (lean) commands?.preloadLean(command);
    runtime ??= await (await import('./runtime.js')).loadRuntime({ config, manager }, io.env, output, io.isTTY && !io.env.NO_COLOR, lean);
  });

  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (err) {
    // Commander has already printed its message (usage errors, help, version).
    if (err instanceof CommanderError) return COMMANDER_OK.has(err.code) ? EXIT_OK : EXIT_USAGE;
    // A ConfigError comes from common/config.ts, which only a config file
    // loads (runtime.ts): import it (and zod and yaml with it) only then.
    const isConfigError = err instanceof Error && err.name === 'ConfigError' && err instanceof (await import('../../common/config.js')).ConfigError;
    // Already loaded by whatever threw an RPC error; import() just hands them over.
    const [{ describeRpcError }, grpc] = await Promise.all([import('../../common/errors.js'), import('@grpc/grpc-js')]);
    if (isConfigError) {
      io.err(`schedctl: ${err.message}\n`);
      return EXIT_USAGE;
    }
    const verbose = opts().verbose === true;
    if (isRpcError(err)) {
      io.err(`schedctl: ${describeRpcError(err, settings?.manager ?? '?')}\n`);
      if (verbose) io.err(`schedctl: debug: gRPC status ${grpc.status[err.code]} (${err.code})\n`);
    } else {
      io.err(`schedctl: ${err instanceof Error ? err.message : String(err)}\n`);
    }
    if (verbose && err instanceof Error && err.stack) io.err(`${err.stack}\n`);
    return EXIT_FAILURE;
  } finally {
    // An open channel would keep the process alive.
    client?.close();
    for (const c of others) c.close();
    runtime?.close();
  }
}
