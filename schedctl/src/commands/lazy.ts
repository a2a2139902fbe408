// Lazy command actions: a command's module is imported only when it runs
// (see registry.ts), and lean commands are preloaded with the runtime.
import type { Command } from 'commander';
import type { Ctx } from './context.js';

/**
 * Commands whose action calls the manager only through ctx.unaryBytes (the
 * listings), with the loader of their action: before they run, the grpc-js
 * client is not loaded (runtime.ts), and their action's module is loaded
 * alongside the runtime instead of after it (cli.ts's preAction hook).
 */
export const lean = new WeakMap<Command, () => Promise<unknown>>();

export const isLean = (command: Command): boolean => lean.has(command);

/** Starts loading a lean command's action; the action awaits the same load (and its failure). */
export function preloadLean(command: Command): void {
  lean
    .get(command)?.()
    .catch(() => undefined);
}

/** The first call's promise, for every call. */
export function once<T>(load: () => Promise<T>): () => Promise<T> {
  let loading: Promise<T> | undefined;
  return () => (loading ??= load());
}

/** A command's action, loaded when it runs: `load` imports its module and picks the function. */
export function lazy<A extends unknown[]>(ctx: Ctx, load: () => Promise<(ctx: Ctx, ...args: A) => Promise<void>>) {
  return async (...args: A): Promise<void> => (await load())(ctx, ...args);
}
