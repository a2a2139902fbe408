import { toJson } from '@bufbuild/protobuf';
import type { View } from './view.js';

/** Canonical protobuf JSON; implicit fields too, so `exitCode: 0` is not silently absent. */
export function jsonValue(view: View): unknown {
  const value = toJson(view.schema, view.message, { alwaysEmitImplicit: true });
  if (view.omit && value && typeof value === 'object') for (const key of view.omit) delete (value as Record<string, unknown>)[key];
  return value;
}

export function printJson(view: View): string {
  return `${JSON.stringify(jsonValue(view), null, 2)}\n`;
}
