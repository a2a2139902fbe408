import { expect } from 'chai';
import { create } from '@bufbuild/protobuf';
import { TaskSchema, TaskState, WorkerState } from '../../proto/gen/schedapi/v1/types_pb.js';
import { age, bytes, cores, exitSummary, shellQuote, taskDuration, taskReason, workerStateName } from '../../schedctl/src/format.js';
import { taskCounts } from '../../schedctl/src/commands/status.js';

describe('schedctl display helpers', () => {
  it('names worker states in lower case with the draining flag', () => {
    expect(workerStateName({ state: WorkerState.CONNECTED, draining: false, leaving: false })).to.equal('connected');
    expect(workerStateName({ state: WorkerState.DISCONNECTED, draining: true, leaving: false })).to.equal('disconnected,draining');
    expect(workerStateName({ state: WorkerState.CONNECTED, draining: false, leaving: true })).to.equal('connected,leaving');
    // A worker that left is just disconnected.
    expect(workerStateName({ state: WorkerState.DISCONNECTED, draining: false, leaving: true })).to.equal('disconnected');
  });

  it('summarises how a task ended', () => {
    expect(exitSummary(create(TaskSchema, { state: TaskState.SCHEDULED }))).to.equal('-');
    expect(exitSummary(create(TaskSchema, { state: TaskState.DONE, exitCode: 0 }))).to.equal('0');
    expect(exitSummary(create(TaskSchema, { state: TaskState.DONE, exitCode: 137, signal: 'SIGKILL' }))).to.equal('137 (SIGKILL)');
    expect(exitSummary(create(TaskSchema, { state: TaskState.DEAD, deadReason: 'ack-timeout' }))).to.equal('-');
  });

  it('gives the reason a task is pending, dead or failed to start', () => {
    const reason = 'no worker fits: 2 insufficient memory';
    expect(taskReason(create(TaskSchema, { state: TaskState.PENDING, pendingReason: reason }))).to.equal(reason);
    expect(taskReason(create(TaskSchema, { state: TaskState.DEAD, deadReason: 'schedule-timeout', pendingReason: reason }))).to.equal(
      'schedule-timeout',
    );
    expect(taskReason(create(TaskSchema, { state: TaskState.DONE, error: 'spawn ./x ENOENT' }))).to.equal('spawn ./x ENOENT');
    expect(taskReason(create(TaskSchema, { state: TaskState.SCHEDULED, pendingReason: reason }))).to.equal('');
  });

  it('quotes argv so it can be pasted back into a shell', () => {
    expect(shellQuote(['echo', 'a b', "it's", '--x=1', ''])).to.equal(`echo 'a b' 'it'\\''s' --x=1 ''`);
  });

  it('formats ages, durations, sizes and cpus', () => {
    const now = 1_700_000_000_000;
    expect(age(0n, now)).to.equal('-');
    expect(age(BigInt(now - 42_000), now)).to.equal('42s');
    expect(age(BigInt(now - 3 * 3_600_000), now)).to.equal('3h');
    const t = create(TaskSchema, { startedUnixMs: 1000n, finishedUnixMs: 1250n });
    expect(taskDuration(t, now)).to.equal('250ms');
    expect(taskDuration(create(TaskSchema, {}), now)).to.equal('-');
    expect(bytes(2n * 1024n ** 3n)).to.equal('2.0Gi');
    expect(bytes(512n)).to.equal('512B');
    expect(cores(1500n)).to.equal('1.5');
  });

  it('lists task counts in lifecycle order whatever the key style', () => {
    expect(taskCounts({ done: 3, TASK_STATE_PENDING: 1, weird: 2 })).to.deep.equal([
      ['pending', 1],
      ['scheduled', 0],
      ['done', 3],
      ['dead', 0],
      ['weird', 2],
    ]);
  });
});
