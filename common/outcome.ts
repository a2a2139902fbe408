// How an ended task ended, in the operator's words (TaskOutcome in types.proto): the
// manager filters listings by it and schedctl shows it. Pure: it reads the record only.
import { TaskOutcome, TaskState, type Task } from '../proto/gen/schedapi/v1/types_pb.js';

type Ended = Pick<Task, 'state' | 'deadReason' | 'exitCode' | 'signal' | 'timedOut'>;

/**
 * outcomeOf: succeeded (done, exit 0, no signal); timed-out (done after its timeout killed it);
 * failed (done otherwise, or dead start-failed: its program never ran); cancelled (dead by
 * tasks cancel, also one whose worker was lost meanwhile: "cancelled (worker-lost)"); lost
 * (dead for any other reason). UNSPECIFIED while the task has not ended.
 */
export function outcomeOf(t: Ended): TaskOutcome {
  if (t.state === TaskState.DONE) {
    if (t.timedOut) return TaskOutcome.TIMED_OUT;
    return t.exitCode === 0 && !t.signal ? TaskOutcome.SUCCEEDED : TaskOutcome.FAILED;
  }
  if (t.state !== TaskState.DEAD) return TaskOutcome.UNSPECIFIED;
  // Dead reasons are a word, maybe followed by ": detail" or " (detail)".
  const reason = /^[a-z-]*/.exec(t.deadReason)![0];
  if (reason === 'cancelled') return TaskOutcome.CANCELLED;
  if (reason === 'start-failed') return TaskOutcome.FAILED;
  return TaskOutcome.LOST;
}
