// Waiting for an event in a test: poll until it holds, and fail (naming it)
// only if it never happens within a generous bound, not because it was slow.

/** Polls check (each turn of the event loop, or every everyMs) until it holds; throws after timeoutMs. */
export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000, everyMs = 0): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`${what}: did not happen within ${timeoutMs}ms`);
    await new Promise((r) => (everyMs > 0 ? setTimeout(r, everyMs) : setImmediate(r)));
  }
}

/** Lets the event loop turn a few times: what was already due (callbacks, microtasks) has run. */
export async function turns(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}
