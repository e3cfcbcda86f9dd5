/**
 * Staging: the current rows of a table's changed keys, COPYed out of the source that changed
 * them into a temporary table on each receiver (or, for rows a resolver merged, written from
 * JSON), and what the applier asks of it before writing (counts per source and origin).
 */
import type { TableInfo } from '../catalog/tables.js';
import { FirstColumnFalse, pipeCopy } from '../db/copy.js';
import type { Session } from '../db/session.js';
import { ident, identList, keyJoin, literal, qualified, shortHash } from '../sql/ident.js';
import { KEY_TABLE, STAGING, TABLES_PER_STATEMENT, type TempNames } from '../sql/names.js';
import type { RowKey } from '../types.js';

const PRESENT = STAGING.present;
const ORIGIN = STAGING.origin;
const SOURCE = STAGING.source;
/** A staged row's key number in its source's key table (merged rows: their position). */
const NUMBER = STAGING.number;

/** Creates (or empties) a table's staging table on the receiver (`here`: the receiver's table). */
export async function createStaging(receiver: Session, here: TableInfo, temp: TempNames, columns: string[]): Promise<void> {
  // The receiver's column types are part of the definition: a reused table must match them.
  const types = here.columns.map((c) => `${c.name} ${c.type}`).join(', ');
  await receiver.tempTable(
    temp.staging,
    `CREATE TEMP TABLE ${ident(temp.staging)} ON COMMIT DELETE ROWS AS
       SELECT true AS ${PRESENT}, NULL::text AS ${SOURCE}, NULL::text AS ${ORIGIN}, 0::bigint AS ${NUMBER}, ${identList(columns)}
         FROM ${qualified(here)} WITH NO DATA /* column types ${shortHash(types)} */`,
  );
}

/** A range of key numbers in a key table (a chunk of a large backlog): `from < n <= to`. */
export interface KeyRange {
  from: number;
  to: number;
}

/**
 * Streams the current rows of the keys in the source's key table (those numbered in `range`,
 * when given) into the receiver's staging table. A key whose row is gone at the source (or,
 * with `filter`, an SQL condition already parenthesized, does not match it) arrives with
 * `pgferry_present = false`. Returns the number of keys staged, and how many of them arrived
 * so (counted on the way).
 */
export async function stageRows(
  source: Session,
  receiver: Session,
  t: TableInfo,
  temp: TempNames,
  columns: string[],
  range?: KeyRange,
  goneOnly = false,
  filter?: string,
): Promise<{ rows: number; gone: number }> {
  const out = `COPY (${changedRowsSelect(source.name, t, temp, columns, range, goneOnly, filter)}) TO STDOUT`;
  const into = `COPY pg_temp.${ident(temp.staging)} (${PRESENT}, ${SOURCE}, ${ORIGIN}, ${NUMBER}, ${identList(columns)}) FROM STDIN`;
  // pgferry_present is the first column.
  const gone = new FirstColumnFalse();
  const rows = await pipeCopy(source, receiver, out, into, gone);
  return { rows, gone: gone.count };
}

/**
 * On the source named `sourceName`: the changed keys of its key table (numbered in `range`,
 * when given) with their current rows, as columns `pgferry_present, pgferry_source,
 * pgferry_origin, pgferry_n, ...columns` (see stageRows). Staged by COPY for PostgreSQL
 * receivers, read in batches for the others (sync/foreign.ts).
 */
export function changedRowsSelect(sourceName: string, t: TableInfo, temp: TempNames, columns: string[], range?: KeyRange, goneOnly = false, filter?: string): string {
  const keys = new Set(t.key);
  // Key columns as the row spells them now (a key table keeps one of the spellings its deltas saw).
  const select = columns.map((c) => (keys.has(c) ? `coalesce(t.${ident(c)}, k.${ident(c)}) AS ${ident(c)}` : `t.${ident(c)}`)).join(', ');
  const n = `k.${KEY_TABLE.number}`;
  const conditions = [
    ...(range ? [`${n} > ${Math.floor(range.from)} AND ${n} <= ${Math.floor(range.to)}`] : []),
    ...(goneOnly ? [`t.${ident(t.key[0]!)} IS NULL`] : []),
  ];
  const where = conditions.length ? `WHERE ${conditions.join(' AND ')}` : '';
  const src = literal(sourceName);
  // pgferry_present first: stageRows counts the gone rows by the first column of each row.
  return `SELECT t.${ident(t.key[0]!)} IS NOT NULL AS ${PRESENT}, ${src} AS ${SOURCE}, coalesce(k.${KEY_TABLE.origin}, ${src}) AS ${ORIGIN}, ${n} AS ${NUMBER}, ${select}
                      FROM pg_temp.${ident(temp.keys)} k LEFT JOIN ${filter ? `(SELECT * FROM ${qualified(t)} WHERE ${filter})` : qualified(t)} t ON ${keyJoin(t, 't', 'k')} ${where}`;
}

/**
 * Writes `rows` (parsed objects, e.g. merged by a resolver) into the staging table, as
 * changes first written by `origin`.
 */
export async function stageObjects(receiver: Session, t: TableInfo, temp: TempNames, columns: string[], rows: Record<string, unknown>[], origin: string): Promise<void> {
  if (rows.length === 0) return;
  const json = `[${rows.map((r) => jsonRow(r, columns, t)).join(',')}]`;
  await receiver.query(
    `INSERT INTO pg_temp.${ident(temp.staging)} (${PRESENT}, ${SOURCE}, ${ORIGIN}, ${NUMBER}, ${identList(columns)})
     SELECT true, $2, $2, row_number() OVER (), ${identList(columns, 'r')} FROM pg_catalog.json_populate_recordset(NULL::${qualified(t)}, $1::json) r`,
    [json, origin],
  );
}

/** json, jsonb */
const JSON_TYPES = new Set([114, 3802]);

/**
 * A row as JSON text that json_populate_recordset reads back exactly: bytea as hex, NaN and
 * ±Infinity as text, and a json or jsonb column given as text (as resolvers get it) embedded
 * as that JSON itself, so its numbers keep their digits and scale.
 */
export function jsonRow(row: Record<string, unknown>, columns: string[], t: TableInfo): string {
  const fields = columns.map((c) => {
    const v = row[c];
    const isJson = JSON_TYPES.has(t.columns.find((x) => x.name === c)?.typeOid ?? 0);
    const text =
      isJson && typeof v === 'string'
        ? v
        : JSON.stringify(Buffer.isBuffer(v) ? '\\x' + v.toString('hex') : typeof v === 'number' && !Number.isFinite(v) ? String(v) : (v ?? null));
    return `${JSON.stringify(c)}:${text}`;
  });
  return `{${fields.join(',')}}`;
}

/**
 * A table's staged keys per source that staged any: how many have a row at the source, and
 * how many are gone there but still exist on the receiver (the rows a delete will remove).
 */
export type StagedCounts = Map<string, { present: number; absent: number }>;

/** The StagedCounts of each of `tables`, before they are applied. */
export async function stagedCounts(receiver: Session, tables: readonly { t: TableInfo; temp: TempNames }[]): Promise<StagedCounts[]> {
  const out = tables.map((): StagedCounts => new Map());
  // Every table of the chunk in one statement, in batches (see collectChanged).
  for (let from = 0; from < tables.length; from += TABLES_PER_STATEMENT) {
    const batch = tables.slice(from, from + TABLES_PER_STATEMENT);
    const r = await receiver.query<{ i: number; src: string; present: string; absent: string }>(
      batch
        .map(
          ({ t, temp }, i) => `SELECT ${from + i} AS i, ${SOURCE} AS src, count(*) FILTER (WHERE ${PRESENT}) AS present,
            count(*) FILTER (WHERE NOT ${PRESENT} AND EXISTS (SELECT 1 FROM ${qualified(t)} d WHERE ${keyJoin(t, 'd', 's')})) AS absent
       FROM pg_temp.${ident(temp.staging)} s GROUP BY 2`,
        )
        .join('\n      UNION ALL\n'),
    );
    for (const x of r.rows) out[x.i]!.set(x.src, { present: Number(x.present), absent: Number(x.absent) });
  }
  return out;
}

/** Drops staged changes first written on the receiver itself: they are never sent back there. */
export async function dropOwnOrigin(receiver: Session, temp: TempNames): Promise<void> {
  await receiver.query(`DELETE FROM pg_temp.${ident(temp.staging)} WHERE ${ORIGIN} = $1`, [receiver.name]);
}

/** Keys staged for a table (for an onException hook). */
export async function stagedKeys(receiver: Session, t: TableInfo, temp: TempNames): Promise<RowKey[]> {
  const r = await receiver.query(`SELECT ${identList(t.key)} FROM pg_temp.${ident(temp.staging)}`);
  return r.rows as RowKey[];
}
