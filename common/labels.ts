// Label syntax, shared by the worker's config and the manager's checks: keys
// like Kubernetes' (an optional DNS prefix and "/", then a name of up to 63
// characters), values of at most 256 characters, at most 64 labels.
import { InvalidArgumentError } from './errors.js';

const LABEL_NAME = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;
const LABEL_PREFIX = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;
export const MAX_LABELS = 64;
export const MAX_LABEL_VALUE = 256;

/** labelKeyProblem says what is wrong with a label key, or undefined when it is fine. */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.indexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && !LABEL_PREFIX.test(prefix)) return 'prefix must be a DNS subdomain (lower case, at most 253 characters)';
  if (!LABEL_NAME.test(name)) return 'name must be 1-63 of [A-Za-z0-9._-], starting and ending with a letter or digit';
  return undefined;
}

/** labelValueProblem says what is wrong with a label value, or undefined when it is fine. */
export function labelValueProblem(value: string): string | undefined {
  if (value.length > MAX_LABEL_VALUE) return `is ${value.length} characters; at most ${MAX_LABEL_VALUE} allowed`;
  if (value.includes('\0')) return 'must not contain NUL bytes';
  return undefined;
}

/** checkLabels throws InvalidArgumentError naming the first bad label of field. */
export function checkLabels(field: string, labels: Record<string, string>): void {
  const keys = Object.keys(labels);
  if (keys.length > MAX_LABELS) throw new InvalidArgumentError(field, `has ${keys.length} labels; at most ${MAX_LABELS} allowed`);
  for (const key of keys) {
    const name = `${field}[${JSON.stringify(key.length > 40 ? `${key.slice(0, 40)}…` : key)}]`;
    const problem = labelKeyProblem(key) ?? labelValueProblem(labels[key]!);
    if (problem) throw new InvalidArgumentError(name, problem);
  }
}
