/**
 * Rows read back a batch at a time: a cursor over a query in the session's open transaction,
 * fetched BATCH rows at a time and parsed with the given types. Transforms read staged rows
 * this way (transform.ts), and so are rows sent to receivers that are not PostgreSQL
 * (sync/foreign.ts). Memory holds one batch.
 */
import type pg from 'pg';
import type { Session } from '../db/session.js';
import type { Row } from '../types.js';

/** Rows fetched at a time. */
export const BATCH = 1000;

let cursors = 0;

/**
 * The rows of `select` in batches. A cursor left open by a failure goes with the rollback of
 * its transaction; one left early by the caller is closed.
 */
export async function* readBatches(session: Session, select: string, types: pg.CustomTypesConfig, values: unknown[] = []): AsyncGenerator<Row[]> {
  const cursor = `pgferry_batches_${++cursors}`;
  await session.query(`DECLARE ${cursor} NO SCROLL CURSOR FOR ${select}`, values);
  let failed = false;
  try {
    for (;;) {
      const r = await session.query<Row>(`FETCH ${BATCH} FROM ${cursor}`, [], types);
      if (r.rows.length === 0) break;
      yield r.rows;
    }
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    if (!failed) await session.query(`CLOSE ${cursor}`);
  }
}
