/**
 * Waiting in tests: a plain sleep, polling until a condition holds, and a deadline on a promise.
 * Prefer `waitFor` (or an event, see `events.ts`) over a sleep when there is something to wait for.
 */

export const sleep = (ms: number): Promise<void> => new Promise<void>((resolve) => setTimeout(resolve, ms));

export interface WaitOptions {
  /** Give up after this long (default 5 s). */
  timeoutMs?: number;
  /** Time between two checks (default 25 ms). */
  everyMs?: number;
}

/** Polls `check` until it returns true, or fails after `timeoutMs` saying what it waited for. */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, options: WaitOptions = {}): Promise<void> {
  const { timeoutMs = 5_000, everyMs = 25 } = options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** What `p` resolves with, or null when it has not settled within `ms` (its rejection passes through). */
export async function within<T>(p: Promise<T>, ms: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
