/**
 * Errors in tests: catching what a call throws, checking CONFIG_INVALID and that secrets stay
 * out of every string form of an error, and one line that describes an error for a failure message.
 */
import { inspect } from 'node:util';
import { expect } from 'vitest';
import { isPgferryError, PgferryError } from '../../src/index.js';

/**
 * `CODE: message` for a pgferry error, else the message (`stack: true`: the stack, where there
 * is one), for failure messages.
 */
export function describeError(err: unknown, options: { stack?: boolean } = {}): string {
  if (err instanceof PgferryError || isPgferryError(err)) return `${err.code}: ${err.message}`;
  if (err instanceof Error) return (options.stack ? err.stack : undefined) ?? err.message;
  return String(err);
}

/**
 * What `fn` threw (synchronously or as a rejection) or what the promise rejected with; fails
 * when it succeeds.
 */
export async function caught(fn: (() => unknown) | Promise<unknown>): Promise<PgferryError> {
  try {
    await (typeof fn === 'function' ? fn() : fn);
  } catch (err) {
    return err as PgferryError;
  }
  throw new Error('expected an error, but the call succeeded');
}

/** Asserts CONFIG_INVALID naming each of `paths` both in the message and in `issues`. */
export function expectConfigInvalid(err: PgferryError, ...paths: string[]): void {
  expect(isPgferryError(err)).toBe(true);
  expect(err).toBeInstanceOf(PgferryError);
  expect(err).toMatchObject({ code: 'CONFIG_INVALID' });
  expect(Array.isArray(err.issues)).toBe(true);
  for (const issue of err.issues!) {
    expect(typeof issue.path).toBe('string');
    expect(typeof issue.message).toBe('string');
    expect(issue.message.length).toBeGreaterThan(0);
  }
  const got = err.issues!.map((i) => i.path);
  for (const path of paths) {
    expect(got, `issues ${JSON.stringify(err.issues)} should name ${path}`).toContain(path);
    expect(err.message).toContain(path);
  }
}

/** Every string form of an error (and its causes) must be free of `secret`. */
export function expectNoSecret(err: unknown, secret: string): void {
  const forms: string[] = [String(err), JSON.stringify(err), inspect(err, { depth: 6 })];
  let e: unknown = err;
  for (let i = 0; e && i < 8; i++) {
    if (e instanceof Error) forms.push(e.message, e.stack ?? '');
    e = (e as { cause?: unknown }).cause;
  }
  for (const f of forms) expect(f).not.toContain(secret);
}
