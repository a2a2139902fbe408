import { stringify } from 'yaml';
import { jsonValue } from './json.js';
import type { View } from './view.js';

/** The same document as -o json, in YAML. */
export function printYaml(view: View): string {
  return stringify(jsonValue(view));
}
