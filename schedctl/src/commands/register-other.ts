// schedctl status, tls and completion: names, flags and help texts; each action in its own module.
import { Argument, Option, type Command } from 'commander';
import { ROLES } from '../../../common/roles.js';
import {
  collect,
  parseDays,
} from '../flags.js';
import type { Ctx } from './context.js';
import { lazy } from './lazy.js';
import { registerEvents } from './register-events.js';

export function registerOther(program: Command, ctx: Ctx): void {
  const tls = program.command('tls').description('certificates for mutual TLS between the management node, workers and schedctl');
  registerTlsCaCreate(tls.command('ca').description('the cluster certificate authority'), ctx);
  registerTlsCertCreate(tls.command('cert').description('certificates signed by the cluster CA'), ctx);
  registerStatus(program, ctx);
  registerEvents(program, ctx);
  registerCompletion(program, ctx);
}

function registerCompletion(program: Command, ctx: Ctx): void {
  program
    .command('completion')
    .description('prints a shell completion script (commands, flags and their choices)')
    .addArgument(new Argument('<shell>', 'bash, zsh or fish').choices(['bash', 'zsh', 'fish']))
    .addHelpText(
      'after',
      `
Examples:
  source <(schedctl completion bash)                     # now; add it to ~/.bashrc to keep it
  schedctl completion bash > /etc/bash_completion.d/schedctl
  source <(schedctl completion zsh)                      # in ~/.zshrc
  schedctl completion fish > ~/.config/fish/completions/schedctl.fish`,
    )
    .action(lazy(ctx, async () => (await import('./completion.js')).completion));
}

function registerStatus(program: Command, ctx: Ctx): void {
  program
    .command('status')
    .description('management node version, store, worker and task counts')
    .action(lazy(ctx, async () => (await import('./status.js')).status));
}

function registerTlsCaCreate(ca: Command, ctx: Ctx): void {
  ca.command('create')
    .description('creates the cluster certificate authority: ca.pem and ca-key.pem (keep the key offline)')
    .option('--dir <dir>', 'where to write the files', '.')
    .option('--name <name>', 'the CA\'s common name', 'sched CA')
    .option('--days <n>', 'validity in days', parseDays, 3650)
    .option('--force', 'overwrite existing files')
    .action(lazy(ctx, async () => (await import('./tls-ca-create.js')).tlsCaCreate));
}

function registerTlsCertCreate(cert: Command, ctx: Ctx): void {
  cert
    .command('create')
    .description('creates a certificate signed by the cluster CA: <name>.pem and <name>-key.pem')
    .addOption(new Option('--role <role>', 'manager (serves), worker (may only Connect) or admin (schedctl)').choices(ROLES).makeOptionMandatory())
    .option('--name <name>', 'common name and file name (default: the role)')
    .option('--host <host>', 'DNS name or IP the manager is reached at (repeatable; default for a manager: localhost and 127.0.0.1)', collect)
    .option('--ca-dir <dir>', 'where ca.pem and ca-key.pem are', '.')
    .option('--dir <dir>', 'where to write the files', '.')
    .option('--days <n>', 'validity in days', parseDays, 365)
    .option('--force', 'overwrite existing files')
    .addHelpText(
      'after',
      `
Examples:
  schedctl tls ca create --dir /etc/sched/tls
  schedctl tls cert create --role manager --host manager.example.com --host 10.0.0.5 --ca-dir /etc/sched/tls --dir /etc/sched/tls
  schedctl tls cert create --role worker --name worker-17 --ca-dir /etc/sched/tls --dir ./worker-17
  schedctl tls cert create --role admin --ca-dir /etc/sched/tls --dir ~/.sched`,
    )
    .action(lazy(ctx, async () => (await import('./tls-cert-create.js')).tlsCertCreate));
}
