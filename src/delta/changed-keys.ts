/**
 * The changed keys a run collected on its sources, read back for multi-master: keys changed
 * on several sources (conflicts), dropping keys that a source lost, and reading a key's
 * current row for a conflict resolver.
 */
import type { TableInfo } from '../catalog/tables.js';
import { pipeCopy } from '../db/copy.js';
import { rowTypes } from '../db/row-types.js';
import type { Session } from '../db/session.js';
import { ident, identList, literal, qualified } from '../sql/ident.js';
import type { TempNames } from '../sql/names.js';
import type { Row, RowKey } from '../types.js';

/** A source that changed a conflicting key. */
export interface Contender {
  db: string;
  /** The key's text form on that source (`ROW(k...)::text`), to find it again there. */
  keyText: string;
  /** Newest change to the key on that source (that server's clock). */
  changedAt: Date;
  /** The same instant in microseconds since the epoch (Date keeps only milliseconds). */
  micros: number;
}

export interface FoundConflict {
  /** The key as the first source holds it. */
  key: RowKey;
  contenders: Contender[];
}

/**
 * Keys changed on two or more sources. Every source's changed keys are gathered on the first
 * of them (COPY, no parsing) and grouped there by the key's own type and collation, so keys
 * that are equal for the table but print differently (citext, numeric scale, collations) are
 * one key. Memory holds the conflicts, not every changed key.
 */
export async function findConflicts(sources: Session[], t: TableInfo, temp: TempNames): Promise<FoundConflict[]> {
  const [home, ...others] = sources;
  if (!home || others.length === 0) return [];
  const keys = identList(t.key);
  const ct = `pg_temp.${ident(temp.contenders)}`;
  await home.tempTable(
    temp.contenders,
    `CREATE TEMP TABLE ${ident(temp.contenders)} ON COMMIT DELETE ROWS AS
       SELECT NULL::text AS pgferry_db, ${keys}, changed_at, NULL::text AS pgferry_kt FROM pg_temp.${ident(temp.keys)} WITH NO DATA`,
  );
  const select = (db: string) => `SELECT ${literal(db)}, ${keys}, changed_at, ROW(${keys})::text FROM pg_temp.${ident(temp.keys)}`;
  await home.query(`INSERT INTO ${ct} ${select(home.name)}`);
  for (const s of others) await pipeCopy(s, home, `COPY (${select(s.name)}) TO STDOUT`, `COPY ${ct} FROM STDIN`);
  const r = await home.query<Record<string, unknown> & { contenders: { db: string; kt: string; at: string; micros: string }[] }>(
    `SELECT ${keys}, pg_catalog.json_agg(pg_catalog.json_build_object('db', pgferry_db, 'kt', pgferry_kt, 'at', changed_at,
                                              'micros', (extract(epoch FROM changed_at) * 1000000::numeric)::bigint::text) ORDER BY pgferry_db) AS contenders
       FROM ${ct} GROUP BY ${keys} HAVING count(*) > 1`,
  );
  return r.rows.map((row) => {
    const key: RowKey = {};
    for (const k of t.key) key[k] = row[k];
    return { key, contenders: row.contenders.map((c) => ({ db: c.db, keyText: c.kt, changedAt: new Date(c.at), micros: Number(c.micros) })) };
  });
}

/** Removes keys (by text form) from a source's key table: that source does not send them. */
export async function dropKeys(session: Session, t: TableInfo, temp: TempNames, keyTexts: string[]): Promise<void> {
  for (let at = 0; at < keyTexts.length; at += 10_000) {
    await session.query(
      `DELETE FROM pg_temp.${ident(temp.keys)} WHERE ROW(${identList(t.key)})::text = ANY($1::text[])`,
      [keyTexts.slice(at, at + 10_000)],
    );
  }
}

/**
 * The current row of a key on a source, or null: parsed by node-postgres, except date and time
 * types, which stay in their text form (see db/row-types.ts) so that rows round-trip exactly.
 */
export async function currentRow(session: Session, t: TableInfo, key: RowKey): Promise<Row | null> {
  const where = t.key.map((k, n) => `${ident(k)} ${t.keyOps[n]} $${n + 1}`).join(' AND ');
  const r = await session.query<Row>(`SELECT * FROM ${qualified(t)} WHERE ${where}`, t.key.map((k) => key[k]), rowTypes);
  return r.rows[0] ?? null;
}
