import type { View } from './view.js';

/** -o name: the full ids, one a line, for xargs and $(...). */
export function printNames(view: View): string {
  const names = view.names();
  return names.length > 0 ? `${names.join('\n')}\n` : '';
}
