/**
 * Writes on a source (multi-master) happen in its read transaction, at the snapshot the run
 * read there. A row that an application changed after that snapshot cannot be written: the
 * statement fails with a serialization error. Such a row keeps the application's newer write,
 * which the next run carries to every other database (it is a change made after this run's
 * read); the rest of the statement's rows are applied. To find those rows without a query per
 * row, the failed statement is tried again on halves of the staged rows, each under a
 * savepoint, down to the single rows that fail.
 */
import createDebug from 'debug';
import { stagedSpans, type Applied, type StagedSpan } from '../apply/applier.js';
import type { Session } from '../db/session.js';
import type { TempNames } from '../sql/names.js';

const debug = createDebug('pgferry:run');

/** SQLSTATE serialization_failure. */
const SERIALIZATION_FAILURE = '40001';
const SAVEPOINT = 'pgferry_newer';

function isSerializationFailure(err: unknown): boolean {
  return (err as { code?: string })?.code === SERIALIZATION_FAILURE;
}

/**
 * Runs `apply` (all staged rows, or one span of them) on a source's read transaction, leaving
 * out the rows changed there after the run's snapshot. Returns what was applied and how many
 * rows were left to the newer writes.
 */
export async function applyPastNewerWrites(
  d: Session,
  temp: TempNames,
  apply: (span?: StagedSpan) => Promise<Applied>,
): Promise<Applied & { kept: number }> {
  const first = await attempt(d, () => apply());
  if (first) return { ...first, kept: 0 };
  const out: Applied & { kept: number } = { count: 0, keys: [], kept: 0 };
  const todo = await stagedSpans(d, temp);
  while (todo.length > 0) {
    const span = todo.pop()!;
    const r = await attempt(d, () => apply(span));
    if (r) {
      out.count += r.count;
      out.keys.push(...r.keys);
    } else if (span.to - span.from <= 1) {
      out.kept++;
    } else {
      const mid = Math.floor((span.from + span.to) / 2);
      todo.push({ ...span, from: mid }, { ...span, to: mid });
    }
  }
  debug('%s: %d row(s) changed after the run read them were left as they are', d.name, out.kept);
  return out;
}

/** `fn` under a savepoint; null when it failed on a serialization error (rolled back). */
async function attempt(d: Session, fn: () => Promise<Applied>): Promise<Applied | null> {
  await d.savepoint(SAVEPOINT);
  try {
    const r = await fn();
    await d.release(SAVEPOINT);
    return r;
  } catch (err) {
    if (!isSerializationFailure(err)) throw err;
    await d.rollbackTo(SAVEPOINT);
    return null;
  }
}
