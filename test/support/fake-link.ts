// A worker stream as the cluster sees it, recording what the manager sends: the
// cluster's unit tests play workers with it.
import type { WorkerLink, WorkerMessage } from '../../management-node/src/cluster.js';

export class FakeLink implements WorkerLink {
  readonly sessionId = 's';
  readonly sent: WorkerMessage[] = [];
  closed?: string;
  constructor(readonly address = '10.0.0.1:5000') {}
  send(msg: WorkerMessage) {
    this.sent.push(msg);
  }
  close(reason: string) {
    this.closed = reason;
  }
  of<C extends WorkerMessage['case']>(c: C) {
    return this.sent.filter((m): m is Extract<WorkerMessage, { case: C }> => m.case === c);
  }
  /** Ids of the tasks offered on this stream, in order. */
  offered(): string[] {
    return this.of('startTask').map((m) => m.value.taskId ?? '');
  }
}
