/**
 * Full copies: empty the receiving table and stream every row of the source into it, in the
 * receiver's transaction, so a reader of the receiver sees the old contents or the new, never
 * a half-filled table. Rows travel as COPY data, never parsed in JavaScript: binary format
 * where every column has the same built-in type on both sides, text otherwise.
 */
import type { TableInfo } from '../catalog/tables.js';
import { pipeCopy } from '../db/copy.js';
import type { Database } from '../db/database.js';
import type { Session } from '../db/session.js';
import { identList, qualified } from '../sql/ident.js';

export interface CopyProgress {
  rows: number;
  done: boolean;
}

/** Empties the table on the receiver: TRUNCATE where foreign keys allow, else DELETE. */
export async function emptyTable(receiver: Session, t: { schema: string; name: string }): Promise<void> {
  await receiver.savepoint('pgferry_empty');
  try {
    await receiver.query(`TRUNCATE ONLY ${qualified(t)}`);
    await receiver.release('pgferry_empty');
  } catch (err) {
    // 0A000: the table is referenced by a foreign key from a table not emptied with it.
    if ((err as { code?: string }).code !== '0A000') throw err;
    await receiver.rollbackTo('pgferry_empty');
    await receiver.query(`DELETE FROM ONLY ${qualified(t)}`);
  }
}

/**
 * Streams every row of `t` (with `where`, an SQL condition already parenthesized, those that
 * match it) from the source's snapshot into the (emptied) receiver table.
 * `onProgress` is called about every `progressMs` with the rows the receiver has taken in
 * (read from pg_stat_progress_copy on a separate connection) and once at the end.
 */
export async function copyTable(
  source: Session,
  receiver: Session,
  t: TableInfo,
  columns: string[],
  opts: { binary: boolean; where?: string; progress?: { db: Database; everyMs: number; report: (p: CopyProgress) => void } },
): Promise<number> {
  const fmt = opts.binary ? ' (FORMAT binary)' : '';
  const cols = identList(columns);
  let timer: NodeJS.Timeout | undefined;
  let polling = false;
  const progress = opts.progress;
  if (progress) {
    const pid = (receiver.client as unknown as { processID?: number }).processID;
    timer = setInterval(() => {
      if (polling) return;
      polling = true;
      progress.db
        .query<{ n: string }>(`SELECT tuples_processed::text AS n FROM pg_catalog.pg_stat_progress_copy WHERE pid OPERATOR(pg_catalog.=) $1`, [pid])
        .then((r) => {
          if (r[0]) progress.report({ rows: Number(r[0].n), done: false });
        })
        .catch(() => undefined)
        .finally(() => (polling = false));
    }, progress.everyMs);
    timer.unref();
  }
  let rows: number;
  try {
    const where = opts.where ? ` WHERE ${opts.where}` : '';
    rows = await pipeCopy(source, receiver, `COPY (SELECT ${cols} FROM ONLY ${qualified(t)}${where}) TO STDOUT${fmt}`, `COPY ${qualified(t)} (${cols}) FROM STDIN${fmt}`);
  } finally {
    if (timer) clearInterval(timer);
  }
  progress?.report({ rows, done: true });
  return rows;
}

/** Whether the receiver's table has no rows. */
export async function isEmpty(receiver: Session, t: { schema: string; name: string }): Promise<boolean> {
  const r = await receiver.query(`SELECT 1 FROM ONLY ${qualified(t)} LIMIT 1`);
  return r.rowCount === 0;
}
