// Safe retries of calls that create something (RunTask): the request carries
// an idempotency key, so sending it again after an answer that got lost (the
// manager died after storing the task, a deadline ran out) returns the same
// task instead of making a second one. Only "no answer" errors are retried;
// any answer from the manager, success or not, is final.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';

/** The key's syntax and its flag parser are in flags.ts (loaded at every start). */
export { IDEMPOTENCY_KEY, parseIdempotencyKey } from './flags.js';

/** A fresh key for one schedctl invocation. */
export function newIdempotencyKey(): string {
  return randomUUID();
}

/** gRPC codes that mean "no answer": the request may or may not have been carried out. */
export const RETRYABLE_CODES: ReadonlySet<grpc.status> = new Set([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED]);

export function isRetryable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' && RETRYABLE_CODES.has(code);
}

export interface RetryOptions {
  /** Overall bound: no attempt starts after this long, and the last one's deadline ends with it. */
  totalMs: number;
  /** Deadline of each attempt (cut to what is left of totalMs). */
  attemptMs: number;
  /** First pause between attempts; doubles up to maxDelayMs, each with jitter. Default 100 and 2000. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** Told of each failed attempt that will be retried, before the pause. */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  /** Stops the retries: the pending pause ends and the last error is thrown. */
  signal?: AbortSignal;
}

/** An attempt gets no less than this; with less of the budget left, the last error stands. */
const MIN_ATTEMPT_MS = 50;

/**
 * Calls `call(deadlineMs, attempt)` until it answers, retrying only the
 * errors isRetryable() accepts, with exponential backoff (full jitter on the
 * upper half), bounded by opts.totalMs. The caller must send the same request
 * (the same idempotency key) on every attempt. Throws the last error.
 */
export async function retryUnary<T>(call: (deadlineMs: number, attempt: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  const end = Date.now() + opts.totalMs;
  const maxDelay = opts.maxDelayMs ?? 2000;
  let delay = opts.initialDelayMs ?? 100;
  for (let attempt = 1; ; attempt++) {
    const left = end - Date.now();
    try {
      return await call(Math.max(MIN_ATTEMPT_MS, Math.min(opts.attemptMs, left)), attempt);
    } catch (err) {
      if (!isRetryable(err) || opts.signal?.aborted) throw err;
      const pause = Math.round(delay / 2 + (Math.random() * delay) / 2);
      if (end - Date.now() - pause < MIN_ATTEMPT_MS) throw err;
      opts.onRetry?.(err, attempt, pause);
      try {
        await sleep(pause, undefined, opts.signal ? { signal: opts.signal } : {});
      } catch {
        throw err; // aborted
      }
      delay = Math.min(delay * 2, maxDelay);
    }
  }
}
