/**
 * Reading back the changed keys a run collected on a source: in key order through a cursor
 * (for conflict detection, which merges the sources' streams), dropping keys that a source
 * lost, and reading a key's current row for a conflict resolver.
 */
import pg from 'pg';
import Cursor from 'pg-cursor';
import type { TableInfo } from '../catalog/tables.js';
import type { Session } from '../db/session.js';
import { ident, identList, qualified } from '../sql/ident.js';
import type { TempNames } from '../sql/names.js';
import type { Row, RowKey } from '../types.js';

/** One changed key as read from a key table. */
export interface ChangedKey {
  /** The key's text form (`ROW(k...)::text`), to find it again in SQL. */
  keyText: string;
  key: RowKey;
  changedAt: Date;
  /** `changedAt` in microseconds since the epoch (Date keeps only milliseconds). */
  micros: number;
}

interface KeyRow {
  kt: string;
  micros: string;
  changed_at: Date;
  [col: string]: unknown;
}

const BATCH = 5000;

/**
 * A source's changed keys of one table in key order (the key's text form, byte order), read
 * through a cursor in batches: memory holds one batch however many keys changed.
 */
export class KeyStream {
  readonly db: string;
  readonly #key: string[];
  #cursor: Cursor<KeyRow>;
  #buf: KeyRow[] = [];
  #pos = 0;
  #done = false;

  constructor(session: Session, t: TableInfo, temp: TempNames) {
    this.db = session.name;
    this.#key = t.key;
    this.#cursor = session.client.query(
      new Cursor<KeyRow>(
        `SELECT ROW(${identList(t.key)})::text COLLATE "C" AS kt, ${identList(t.key)}, changed_at,
                (extract(epoch FROM changed_at) * 1000000)::bigint::text AS micros
           FROM pg_temp.${ident(temp.keys)} ORDER BY 1`,
      ),
    );
  }

  /** The next key without taking it, or undefined at the end. */
  async peek(): Promise<ChangedKey | undefined> {
    if (this.#pos >= this.#buf.length) {
      if (this.#done) return undefined;
      this.#buf = await this.#cursor.read(BATCH);
      this.#pos = 0;
      if (this.#buf.length === 0) {
        this.#done = true;
        return undefined;
      }
    }
    const row = this.#buf[this.#pos]!;
    const key: RowKey = {};
    for (const k of this.#key) key[k] = row[k];
    return { keyText: row.kt, key, changedAt: row.changed_at, micros: Number(row.micros) };
  }

  take(): void {
    this.#pos++;
  }

  async close(): Promise<void> {
    await this.#cursor.close();
  }
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
 * Types whose node-postgres parsing loses something (dates and times shift with the process
 * time zone and lose microseconds; intervals do not print back), and their arrays: a resolver
 * gets them in their PostgreSQL text form, which a merged row writes back exactly.
 */
const KEEP_AS_TEXT = new Set([
  1082, 1083, 1114, 1184, 1186, 1266, // date, time, timestamp, timestamptz, interval, timetz
  1182, 1183, 1115, 1185, 1187, 1270, // their arrays
]);

const rowTypes = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    KEEP_AS_TEXT.has(oid) ? (value: string) => value : pg.types.getTypeParser(oid, format ?? 'text')) as pg.CustomTypesConfig['getTypeParser'],
};

/**
 * The current row of a key on a source, or null: parsed by node-postgres, except date and time
 * types, which stay in their text form (see KEEP_AS_TEXT) so that rows round-trip exactly.
 */
export async function currentRow(session: Session, t: TableInfo, key: RowKey): Promise<Row | null> {
  const where = t.key.map((k, n) => `${ident(k)} ${t.keyOps[n]} $${n + 1}`).join(' AND ');
  const r = await session.query<Row>(`SELECT * FROM ${qualified(t)} WHERE ${where}`, t.key.map((k) => key[k]), rowTypes);
  return r.rows[0] ?? null;
}
