// outcomeOf: the rules of TaskOutcome (types.proto) on records shaped as the manager writes them.
import { expect } from 'chai';
import { create } from '@bufbuild/protobuf';
import { TaskOutcome, TaskSchema, TaskState } from '../../proto/gen/schedapi/v1/types_pb.js';
import { outcomeOf } from '../../common/outcome.js';

const task = (o: { state: TaskState; deadReason?: string; exitCode?: number; signal?: string; timedOut?: boolean }) => create(TaskSchema, o);
const { DONE, DEAD, PENDING, SCHEDULED } = TaskState;

describe('common/outcome', () => {
  it('done with exit 0 and no signal is succeeded; any other exit or a signal is failed', () => {
    expect(outcomeOf(task({ state: DONE, exitCode: 0 }))).to.equal(TaskOutcome.SUCCEEDED);
    expect(outcomeOf(task({ state: DONE, exitCode: 3 }))).to.equal(TaskOutcome.FAILED);
    expect(outcomeOf(task({ state: DONE, exitCode: 0, signal: 'SIGSEGV' }))).to.equal(TaskOutcome.FAILED);
  });

  it('done after its timeout killed it is timed-out, whatever the exit', () => {
    expect(outcomeOf(task({ state: DONE, exitCode: 0, signal: 'SIGTERM', timedOut: true }))).to.equal(TaskOutcome.TIMED_OUT);
    expect(outcomeOf(task({ state: DONE, exitCode: 143, timedOut: true }))).to.equal(TaskOutcome.TIMED_OUT);
  });

  it('dead start-failed is failed; dead by cancel (also with a lost worker) is cancelled', () => {
    expect(outcomeOf(task({ state: DEAD, deadReason: 'start-failed', exitCode: 127 }))).to.equal(TaskOutcome.FAILED);
    expect(outcomeOf(task({ state: DEAD, deadReason: 'cancelled', signal: 'SIGTERM' }))).to.equal(TaskOutcome.CANCELLED);
    expect(outcomeOf(task({ state: DEAD, deadReason: 'cancelled (worker-lost)' }))).to.equal(TaskOutcome.CANCELLED);
  });

  it('dead for any other reason is lost', () => {
    for (const deadReason of ['worker-lost', 'worker-lost: the worker killed it', 'schedule-timeout', 'ack-timeout', 'no worker accepted the task', 'drained', '']) {
      expect(outcomeOf(task({ state: DEAD, deadReason })), deadReason).to.equal(TaskOutcome.LOST);
    }
  });

  it('a task that has not ended has no outcome', () => {
    expect(outcomeOf(task({ state: PENDING }))).to.equal(TaskOutcome.UNSPECIFIED);
    expect(outcomeOf(task({ state: SCHEDULED }))).to.equal(TaskOutcome.UNSPECIFIED);
  });
});
