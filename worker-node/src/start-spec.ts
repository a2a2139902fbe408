// What an offer (StartTask) asks of the executor, or why it is malformed: the
// manager checks specs too, but a worker takes nothing on trust.
import type { StartTask } from '../../proto/gen/schedapi/v1/worker_pb.js';
import type { ExecSpec } from './executor.js';
import { checkGroup } from './task-env.js';
import { checkTaskId } from './task-id.js';

export function execSpecOf(st: StartTask): (ExecSpec & { millicpu: number; memoryBytes: number }) | { invalid: string } {
  const invalid = checkTaskId(st.taskId);
  if (invalid) return { invalid };
  const spec = st.spec;
  const argv = spec?.argv ?? [];
  if (!argv[0]) return { invalid: 'spec.argv: empty command' };
  const group = { id: st.groupId, index: st.groupIndex, size: st.groupSize };
  const badGroup = checkGroup(group);
  if (badGroup) return { invalid: badGroup };
  return {
    argv,
    env: spec?.env ?? {},
    cwd: spec?.cwd ?? '',
    millicpu: Number(spec?.resources?.millicpu ?? 0n),
    memoryBytes: Number(spec?.resources?.memoryBytes ?? 0n),
    timeoutMs: spec?.timeoutMs ?? 0,
    group,
    user: spec?.user ?? '',
    maxPids: spec?.maxPids ?? 0,
  };
}
