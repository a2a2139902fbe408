// The one place commands are registered: schedctl <target> <cmd> (each target's
// commands in register-<target>.ts).
//
// Start-up time: registering a command costs only what commander needs to
// parse its flags and print its help (names, descriptions, options, help
// text, the flag parsers in ../flags.ts). Its action lives in its own module
// (./<target>-<cmd>.ts), loaded through import() when the command runs, so
// that `--help` and every other command run none of its top-level code (nor
// that of gRPC, protobuf, zod, yaml and x509 behind it).
import type { Command } from 'commander';
import type { Ctx } from './context.js';
import { registerOther } from './register-other.js';
import { registerSchedules } from './register-schedules.js';
import { registerTasks } from './register-tasks.js';
import { registerWorkers } from './register-workers.js';

export { isLean, preloadLean } from './lazy.js';

export function registerCommands(program: Command, ctx: Ctx): void {
  registerWorkers(program.command('workers').description('remote servers that are used for running tasks'), ctx);
  registerTasks(program.command('tasks').description('tasks that can be scheduled on the cluster of workers'), ctx);
  registerSchedules(program.command('schedules').description('tasks run periodically, at the times of cron expressions'), ctx);
  registerOther(program, ctx);
}
