import { toJson } from '@bufbuild/protobuf';
import type { View } from './view.js';

/** Canonical protobuf JSON; implicit fields too, so `exitCode: 0` is not silently absent. */
export function jsonValue(view: View): unknown {
  return toJson(view.schema, view.message, { alwaysEmitImplicit: true });
}

export function printJson(view: View): string {
  return `${JSON.stringify(jsonValue(view), null, 2)}\n`;
}
