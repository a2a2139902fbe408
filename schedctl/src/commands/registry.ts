// The one place commands are registered: schedctl <target> <cmd>.
import type { Command } from 'commander';
import type { Ctx } from './context.js';
import { registerStatus } from './status.js';
import { registerTasksCancel } from './tasks-cancel.js';
import { registerTasksLogs } from './tasks-logs.js';
import { registerTasksLs } from './tasks-ls.js';
import { registerTasksRun } from './tasks-run.js';
import { registerTasksShow } from './tasks-show.js';
import { registerTlsCaCreate } from './tls-ca-create.js';
import { registerTlsCertCreate } from './tls-cert-create.js';
import { registerWorkersDrain } from './workers-drain.js';
import { registerWorkersLs } from './workers-ls.js';
import { registerWorkersShow } from './workers-show.js';

export function registerCommands(program: Command, ctx: Ctx): void {
  const workers = program.command('workers').description('remote servers that are used for running tasks');
  registerWorkersLs(workers, ctx);
  registerWorkersShow(workers, ctx);
  registerWorkersDrain(workers, ctx);

  const tasks = program.command('tasks').description('tasks that can be scheduled on the cluster of workers');
  registerTasksRun(tasks, ctx);
  registerTasksLs(tasks, ctx);
  registerTasksShow(tasks, ctx);
  registerTasksCancel(tasks, ctx);
  registerTasksLogs(tasks, ctx);

  const tls = program.command('tls').description('certificates for mutual TLS between the management node, workers and schedctl');
  registerTlsCaCreate(tls.command('ca').description('the cluster certificate authority'), ctx);
  registerTlsCertCreate(tls.command('cert').description('certificates signed by the cluster CA'), ctx);

  registerStatus(program, ctx);
}
