/**
 * onException: when an apply statement fails on a constraint, its writes are rolled back to a
 * savepoint, the sync's hook may settle the rows (writing through the run's transactions), and
 * the table is applied again when it asks, at most MAX_EXCEPTION_RETRIES times.
 */
import type { Applied } from '../apply/applier.js';
import { stagedKeys } from '../apply/staging.js';
import type { Session } from '../db/session.js';
import { PgferryError } from '../errors.js';
import type { ExceptionContext, RowKey } from '../types.js';
import type { Run, RunTable } from './context.js';

const MAX_EXCEPTION_RETRIES = 3;
/** SQLSTATE class of integrity constraint violations. */
const CONSTRAINT_CLASS = '23';
const SAVEPOINT = 'pgferry_apply';

/**
 * Runs one apply statement; when it fails on a constraint, rolls it back, lets the sync's
 * onException hook settle it, and tries again (re-staging the rows) when the hook asks.
 */
export async function withExceptionHook(
  run: Run,
  t: RunTable,
  d: Session,
  query: ExceptionContext['query'],
  apply: (attempt: number) => Promise<Applied>,
  restage: () => Promise<unknown>,
): Promise<Applied> {
  const hook = run.plan.config.onException;
  for (let attempt = 0; ; attempt++) {
    if (hook) await d.savepoint(SAVEPOINT);
    try {
      const r = await apply(attempt);
      if (hook) await d.release(SAVEPOINT);
      return r;
    } catch (err) {
      const e = err as { code?: string; constraint?: string; message?: string; detail?: string };
      if (typeof e.code !== 'string' || !e.code.startsWith(CONSTRAINT_CLASS)) throw err;
      let keys: RowKey[] = [];
      if (hook) {
        await d.rollbackTo(SAVEPOINT);
        keys = await stagedKeys(d, t.receivers.get(d.name)!, t.temp);
        if (attempt < MAX_EXCEPTION_RETRIES) {
          const answer = await hook({ sync: run.sync, table: t.display, database: d.name, error: err as Error, constraint: e.constraint, keys, query });
          if (answer === 'retry') {
            await restage();
            continue;
          }
        }
      }
      throw new PgferryError(
        'CONSTRAINT_VIOLATION',
        `Sync "${run.sync}": applying ${t.display} on database "${d.name}" violates constraint "${e.constraint ?? '?'}": ${e.message ?? ''}${e.detail ? ` (${e.detail})` : ''}` +
          (keys.length ? `; keys being applied: ${JSON.stringify(keys.slice(0, 10))}${keys.length > 10 ? ` and ${keys.length - 10} more` : ''}` : '') +
          `. Nothing of this run was applied. Fix the rows, or settle it with an onException hook.`,
        { sync: run.sync, database: d.name, table: t.display, constraint: e.constraint, cause: err },
      );
    }
  }
}
