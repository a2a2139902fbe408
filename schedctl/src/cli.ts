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
import { CONFIG_ENV, DEFAULT_CONFIG_PATH, MANAGER_ENV } from './config-paths.js';
import { OUTPUT_FORMATS, type OutputFormat } from './printers/formats.js';
import type { Runtime } from './runtime.js';

export type { CliIo } from './commands/context.js';

/** Exit codes: 0 ok, 1 the management node failed or is unreachable, 2 usage or config error (the rest: EXIT_STATUS). */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
/** What `schedctl --help` says of exit codes; the waits' codes are theirs (flags.ts EXIT_TASK_DEAD, wait.ts). */
const EXIT_STATUS: Array<[string, string]> = [
  ['0', 'success'],
  ['1', 'schedctl or the management node failed (unreachable, refused, an id that names nothing)'],
  ['2', 'usage or config error'],
  ['125', 'tasks run --wait, tasks wait: a task is dead (it will never run)'],
  ['N', "tasks run --wait, tasks wait: the failed task's exit code (127/126: could not start; 128+N: signal N)"],
  ['130', 'interrupted (Ctrl-C)'],
];

interface GlobalOptions {
  config?: string;
  verbose?: boolean;
  manager?: string;
  output: OutputFormat;
  headers: boolean;
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
      ['schedctl -o name tasks ls --state dead | xargs schedctl tasks show', 'full ids, one a line'],
      ['schedctl tasks cancel ID', 'stops a task; it ends dead with reason cancelled'],
      ['source <(schedctl completion bash)', 'completes commands, flags and their choices'],
    ]),
    `config: -c FILE, else $${CONFIG_ENV}, else ${DEFAULT_CONFIG_PATH} if it exists, else defaults\n(manager 127.0.0.1:7070, timeout 10s). $${MANAGER_ENV} (host:port, or several comma-separated)\noverrides the config's manager; --manager overrides both.\n`,
    'ids: wherever an id goes, a unique prefix, a task\'s short id (its last 8 characters, as\ntables show them) or a worker\'s name will do.\n',
    section('exit status', EXIT_STATUS),
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
    .option('--manager <host:port>', `management node address (several: a:7070,b:7070), overrides $${MANAGER_ENV} and the config`)
    .addOption(
      new Option('-o, --output <format>', 'output format: table, wide (full ids, every column), json, yaml, name (full ids, one a line)')
        .choices(OUTPUT_FORMATS)
        .default('table'),
    )
    .option('--no-headers', 'tables without their header line')
    .version(VERSION, '-V, --version', 'print the schedctl version')
    .helpOption('-h, --help', 'print this help');
  return program;
}

function isRpcError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === 'number' && 'details' in err;
}

/** grpc.status.UNAVAILABLE, without loading grpc-js for it. */
const UNAVAILABLE = 14;

/**
 * The one line of an RPC failure. A plain connection that only "Failed to connect" may have
 * reached a manager that wants TLS: a handshake of our own (diagnose.ts) says whether it does.
 */
async function describeFailure(
  err: ServiceError,
  settings: Settings | undefined,
  describe: (err: unknown, address: string, tlsClient?: boolean) => string,
): Promise<string> {
  const address = settings?.manager ?? '?';
  const tlsClient = settings ? settings.tls !== undefined : undefined;
  if (settings && !settings.tls && err.code === UNAVAILABLE && /Failed to connect/.test(err.details)) {
    const first = address.split(',')[0]!;
    if (await (await import('./diagnose.js')).speaksTls(first)) {
      return `cannot reach the management node at ${address}: it speaks TLS, but schedctl's config has no tls: section (add one: ca, cert and key)`;
    }
  }
  return describe(err, address, tlsClient);
}

/** Commander codes for help/version: printed on request, so not failures. */
const COMMANDER_OK = new Set(['commander.help', 'commander.helpDisplayed', 'commander.version']);

/** Program options that take a value (as the next argument). */
const VALUE_OPTIONS = new Set(['-c', '--config', '--manager', '-o', '--output']);
const FLAG_OPTIONS = new Set(['-v', '--verbose', '--no-headers']);

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
    const { config, manager, output, headers } = opts();
    const lean = commands?.isLean(command) === true;
    if (lean) commands?.preloadLean(command);
    const printing = { output, headers, color: io.isTTY && !io.env.NO_COLOR };
    runtime ??= await (await import('./runtime.js')).loadRuntime({ config, manager }, io.env, printing, lean);
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
      io.err(`schedctl: ${await describeFailure(err, settings, describeRpcError)}\n`);
      // The bundle hands grpc-js over as a CommonJS module: its exports may sit under default.
      const names = (grpc.status ?? (grpc as unknown as { default: typeof grpc }).default.status) as Record<number, string>;
      if (verbose) io.err(`schedctl: debug: gRPC status ${names[err.code]} (${err.code})\n`);
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
