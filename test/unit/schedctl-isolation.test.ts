// schedctl's side of task isolation: --user and --max-pids are checked before anything is
// sent, and tasks show / --wait say how an attempt ended out of memory and what it used.
import { expect } from 'chai';
import { create } from '@bufbuild/protobuf';
import { TaskSchema, TaskState } from '../../proto/gen/schedapi/v1/types_pb.js';
import { parseMaxPids, parseUser } from '../../schedctl/src/flags.js';
import { cpuTime, taskFields } from '../../schedctl/src/commands/tasks-show.js';
import { specFromOptions } from '../../schedctl/src/commands/tasks-run.js';
import { taskReason } from '../../schedctl/src/format.js';
import { failureOf } from '../../schedctl/src/wait.js';

describe('schedctl: task isolation', () => {
  it('--user takes a user name and --max-pids a whole number within Linux\'s pid_max; both reach the spec', () => {
    expect(parseUser('builder')).to.equal('builder');
    expect(() => parseUser('a b')).to.throw(/must be a user name/);
    expect(() => parseUser('')).to.throw(/must be a user name/);
    expect(parseMaxPids('512')).to.equal(512);
    expect(() => parseMaxPids('0')).to.throw(/from 1 to 4194304/);
    expect(() => parseMaxPids('5000000')).to.throw(/from 1 to 4194304/);
    const spec = specFromOptions(['make'], { user: 'builder', maxPids: 512 });
    expect(spec).to.deep.include({ user: 'builder', maxPids: 512 });
    expect(specFromOptions(['make'], {})).to.deep.include({ user: '', maxPids: 0 });
  });

  it('an OOM-killed attempt says so in tasks show, the REASON column and --wait, with its peak memory and CPU time', () => {
    const task = create(TaskSchema, {
      id: 't1',
      state: TaskState.DONE,
      exitCode: 137,
      signal: 'SIGKILL',
      oomKilled: true,
      peakMemoryBytes: 64n << 20n,
      cpuTimeUs: 2_345_678n,
      error: 'out of memory: killed by the kernel at its 64Mi limit',
      spec: { argv: ['eat'], user: 'builder', maxPids: 100, resources: { memoryBytes: 64n << 20n } },
    });
    const fields = new Map(taskFields(task, Date.now()).fields);
    expect(fields.get('Out of memory')).to.match(/^yes/);
    expect(fields.get('Peak memory')).to.equal('64Mi');
    expect(fields.get('CPU time')).to.equal('2.346s');
    expect(fields.get('User')).to.equal('builder');
    expect(fields.get('Max pids')).to.equal('100');
    expect(taskReason(task)).to.equal('out of memory: killed by the kernel at its 64Mi limit');
    expect(failureOf(task)).to.equal('out of memory: killed by the kernel at its 64Mi limit');
    expect(failureOf(create(TaskSchema, { state: TaskState.DONE, exitCode: 137, oomKilled: true }))).to.match(/OOM killer/);
    expect(cpuTime(125_500_000n)).to.equal('2m05.5s');
  });
});
