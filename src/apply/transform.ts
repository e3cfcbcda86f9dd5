/**
 * Transforms: the rows of a table with a transform pass through JavaScript on their way to a
 * receiver, and only those. The staged rows that exist at the source are read back from the
 * receiver's staging table through a cursor, a batch at a time (batches.ts), parsed as resolver rows are
 * (db/row-types.ts), given to the transform, and written into a second temporary table as the
 * rows it returned; then those replace the staged rows. A key whose transform returned null is
 * left out for that receiver: neither written nor deleted. Memory holds one batch.
 */
import type { TableInfo } from '../catalog/tables.js';
import { pipeCopy } from '../db/copy.js';
import { rowTypes } from '../db/row-types.js';
import type { Session } from '../db/session.js';
import { PgferryError } from '../errors.js';
import { ident, identList, literal, qualified, shortHash } from '../sql/ident.js';
import { STAGING, type TempNames } from '../sql/names.js';
import type { Row, TableTransform, TransformContext } from '../types.js';
import { createStaging, jsonRow } from './staging.js';
import { readBatches } from './batches.js';

/** A transform and where the rows it sees are going. */
export interface StagedTransform {
  fn: TableTransform;
  ctx: TransformContext;
}

const META = [STAGING.present, STAGING.source, STAGING.origin, STAGING.number] as const;

/**
 * Replaces the staged present rows of `here` (the receiver's table) on `receiver` by what the
 * transform makes of them. Returns how many keys it left out (transform returned null).
 */
export async function transformStaged(receiver: Session, here: TableInfo, temp: TempNames, columns: string[], key: string[], tr: StagedTransform): Promise<number> {
  const staged = `pg_temp.${ident(temp.staging)}`;
  const out = `${temp.staging}_t`;
  const shape = shortHash(columns.map((c) => `${c} ${here.columns.find((x) => x.name === c)?.type}`).join(', '));
  await receiver.tempTable(out, `CREATE TEMP TABLE ${ident(out)} ON COMMIT DELETE ROWS AS SELECT * FROM ${staged} WITH NO DATA /* ${shape} */`);
  let dropped = 0;
  for await (const rows of readBatches(receiver, `SELECT ${identList([...META, ...columns])} FROM ${staged} WHERE ${STAGING.present}`, rowTypes)) {
    const done = await Promise.all(rows.map((staged) => transformOne(staged, columns, key, tr)));
    const kept = done.filter((x): x is string => x !== null);
    dropped += done.length - kept.length;
    if (kept.length === 0) continue;
    try {
      await receiver.query(`INSERT INTO pg_temp.${ident(out)} SELECT * FROM pg_catalog.json_populate_recordset(NULL::pg_temp.${ident(out)}, $1::json)`, [`[${kept.join(',')}]`]);
    } catch (err) {
      throw transformError(tr.ctx, `in a batch of ${kept.length} rows`, `returned rows the receiver cannot take: ${(err as Error).message}`, err);
    }
  }
  await receiver.query(`DELETE FROM ${staged} WHERE ${STAGING.present}`);
  await receiver.query(`INSERT INTO ${staged} SELECT * FROM pg_temp.${ident(out)}`);
  return dropped;

  /** One staged row through the transform: the JSON of the row to stage instead, or null. */
  async function transformOne(staged: Row, cols: string[], keyCols: string[], t: StagedTransform): Promise<string | null> {
    const written = await transformRow(staged, cols, keyCols, t);
    if (written === null) return null;
    const meta = META.map((m) => `${JSON.stringify(m)}:${JSON.stringify(staged[m] ?? null)}`).join(',');
    return `{${meta},${jsonRow(written, cols, here).slice(1)}`;
  }
}

/**
 * One row (of `cols`, read with `keyCols` as its key) through the transform: the row to write
 * instead, its key kept as it was (the key names the row on every database), or null.
 */
export async function transformRow(staged: Row, cols: string[], keyCols: string[], t: StagedTransform): Promise<Row | null> {
  const row: Row = {};
  for (const c of cols) row[c] = staged[c];
  const keyOf = () => keyCols.map((k) => `${k}=${String(staged[k])}`).join(', ') || '(none)';
  let result: Row | null;
  try {
    result = await t.fn({ ...row }, t.ctx);
  } catch (err) {
    throw transformError(t.ctx, `key ${keyOf()}`, `threw: ${(err as Error)?.message ?? String(err)}`, err);
  }
  if (result === null) return null;
  if (typeof result !== 'object' || Array.isArray(result)) throw transformError(t.ctx, `key ${keyOf()}`, 'returned neither a row object nor null');
  const written: Row = { ...result };
  for (const k of keyCols) written[k] = staged[k];
  return written;
}

function transformError(ctx: TransformContext, at: string, what: string, cause?: unknown): PgferryError {
  return new PgferryError(
    'RUN_FAILED',
    `Sync "${ctx.sync}": the transform of table ${ctx.table} for target "${ctx.target}" ${what} (${at}). Nothing of the run was applied; fix the transform and run again.`,
    { sync: ctx.sync, table: ctx.table, database: ctx.target, ...(cause !== undefined && { cause }) },
  );
}

/**
 * A whole copy of `t` (those of its rows that match `where`) through the transform: COPY into
 * the receiver's staging table, transform there, then insert into the emptied receiver table
 * (`here`). Returns the rows written.
 */
export async function copyTransformed(
  source: Session,
  receiver: Session,
  t: TableInfo,
  here: TableInfo,
  temp: TempNames,
  columns: string[],
  where: string,
  tr: StagedTransform,
): Promise<number> {
  await createStaging(receiver, here, temp, columns);
  const src = literal(source.name);
  const staged = `pg_temp.${ident(temp.staging)}`;
  await pipeCopy(
    source,
    receiver,
    `COPY (SELECT true, ${src}, ${src}, pg_catalog.row_number() OVER (), ${identList(columns)} FROM ONLY ${qualified(t)} WHERE ${where}) TO STDOUT`,
    `COPY ${staged} (${identList([...META, ...columns])}) FROM STDIN`,
  );
  await transformStaged(receiver, here, temp, columns, t.key, tr);
  const r = await receiver.query(
    `INSERT INTO ${qualified(here)} (${identList(columns)}) OVERRIDING SYSTEM VALUE SELECT ${identList(columns)} FROM ${staged} WHERE ${STAGING.present}`,
  );
  await receiver.query(`DELETE FROM ${staged}`);
  return r.rowCount ?? 0;
}
