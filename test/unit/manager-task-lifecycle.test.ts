// The task state machine on bare records: each transition, and the attempt rule
// that keeps at most one attempt live (no store, no workers, no clock).
import { expect } from 'chai';
import { create } from '@bufbuild/protobuf';
import { TaskSchema, TaskState } from '../../proto/gen/schedapi/v1/types_pb.js';
import { FinishedSchema } from '../../proto/gen/schedapi/v1/worker_pb.js';
import {
  adopt,
  died,
  finish,
  isCurrentAttempt,
  isTerminal,
  mayAdopt,
  offered,
  retried,
  retriesLeft,
  scheduled,
  takenBack,
} from '../../management-node/src/task-lifecycle.js';

const pending = (retries = 0) => create(TaskSchema, { id: 't', state: TaskState.PENDING, createdUnixMs: 1000n, spec: { argv: ['true'], retries } });

describe('task lifecycle', () => {
  it('each offer is a new attempt, and only the current attempt on its worker counts', () => {
    const t = pending();
    offered(t, 'w1');
    expect(t).to.deep.include({ attempt: 1, workerId: 'w1', state: TaskState.PENDING });
    expect(isCurrentAttempt(t, 'w1', 1)).to.be.true;
    expect(isCurrentAttempt(t, 'w2', 1)).to.be.false;
    takenBack(t, 'rejected by worker w1: busy');
    expect(t).to.deep.include({ workerId: '', error: 'rejected by worker w1: busy' });
    offered(t, 'w2');
    expect(isCurrentAttempt(t, 'w1', 1)).to.be.false;
    expect(isCurrentAttempt(t, 'w2', 2)).to.be.true;
  });

  it('a lost attempt is retried while retries remain, with a message naming the attempt', () => {
    const t = pending(1);
    offered(t, 'w1');
    scheduled(t, 2000);
    expect(retriesLeft(t)).to.be.true;
    retried(t, 'worker-lost');
    expect(t).to.deep.include({ state: TaskState.PENDING, retriesUsed: 1, workerId: '', pid: 0, error: 'worker-lost (attempt 1); retry 1 of 1' });
    expect(retriesLeft(t)).to.be.false;
    died(t, 'worker-lost', 3000);
    expect(isTerminal(t)).to.be.true;
    expect(t).to.deep.include({ state: TaskState.DEAD, deadReason: 'worker-lost', finishedUnixMs: 3000n });
  });

  it('a result is done, dead start-failed if it never started, dead cancelled if stopped; times stay ordered', () => {
    const run = (f: Record<string, unknown>, cancelled = false) => {
      const t = pending();
      offered(t, 'w1');
      scheduled(t, 2000);
      finish(t, create(FinishedSchema, { task: { taskId: 't', attempt: 1 }, ...f }), cancelled, 5000);
      return t;
    };
    expect(run({ exitCode: 3, startedUnixMs: 500n, finishedUnixMs: 600n })).to.deep.include({
      state: TaskState.DONE,
      exitCode: 3,
      startedUnixMs: 2000n, // the worker's clock was behind: not before scheduled
      finishedUnixMs: 2000n,
    });
    expect(run({ startFailed: true, exitCode: 127 })).to.deep.include({ state: TaskState.DEAD, deadReason: 'start-failed', exitCode: 127 });
    expect(run({ signal: 'SIGTERM' }, true)).to.deep.include({ state: TaskState.DEAD, deadReason: 'cancelled', signal: 'SIGTERM', finishedUnixMs: 5000n });
  });

  it('a recovered pending task adopts only a newer attempt, only from a held task and a known worker', () => {
    const t = pending();
    expect(mayAdopt(t, 1, true)).to.be.true;
    expect(mayAdopt(t, 0, true)).to.be.false;
    expect(mayAdopt(t, 1, false)).to.be.false;
    adopt(t, 'w1', 1);
    expect(isCurrentAttempt(t, 'w1', 1)).to.be.true;
    scheduled(t, 2000);
    expect(mayAdopt(t, 2, true)).to.be.false;
  });
});
