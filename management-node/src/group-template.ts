// {index} in the command of a group's members (tasks run --count N): each
// member's argv has it replaced by the member's index (0…N-1) at submission, so
// the stored spec is what runs. {{index}} stands for a literal {index}. Outside
// a group the argv is kept as given, braces and all.
import { clone } from '@bufbuild/protobuf';
import { TaskSpecSchema, type TaskSpec } from '../../proto/gen/schedapi/v1/types_pb.js';

const INDEX = /\{\{index\}\}|\{index\}/g;

/** memberSpec is the spec of member `index` of a group of `size`: spec itself when there is nothing to replace. */
export function memberSpec(spec: TaskSpec, index: number, size: number): TaskSpec {
  if (size <= 1 || !spec.argv.some((a) => a.includes('{index}'))) return spec;
  const copy = clone(TaskSpecSchema, spec);
  copy.argv = spec.argv.map((a) => a.replace(INDEX, (m) => (m === '{index}' ? String(index) : '{index}')));
  return copy;
}
