/**
 * Finds keys changed on two or more sources. Each source's key table is read in key order
 * (the key's text form, byte order) through a cursor, and the streams are merged, so memory
 * holds one batch per source however many keys changed.
 */
import Cursor from 'pg-cursor';
import type { TableInfo } from '../catalog/tables.js';
import type { Session } from '../db/session.js';
import { keyTable } from '../delta/reader.js';
import { ident, identList } from '../sql/ident.js';
import type { RowKey } from '../types.js';
import type { Contender } from './strategies.js';

interface KeyRow {
  kt: string;
  micros: string;
  changed_at: Date;
  [col: string]: unknown;
}

class KeyStream {
  readonly db: string;
  #cursor: Cursor<KeyRow>;
  #buf: KeyRow[] = [];
  #pos = 0;
  #done = false;

  constructor(session: Session, t: TableInfo, i: number) {
    this.db = session.name;
    this.#cursor = session.client.query(
      new Cursor<KeyRow>(
        `SELECT ROW(${identList(t.key)})::text COLLATE "C" AS kt, ${identList(t.key)}, changed_at,
                (extract(epoch FROM changed_at) * 1000000)::bigint::text AS micros
           FROM pg_temp.${ident(keyTable(i))} ORDER BY 1`,
      ),
    );
  }

  async peek(): Promise<KeyRow | undefined> {
    if (this.#pos < this.#buf.length) return this.#buf[this.#pos];
    if (this.#done) return undefined;
    this.#buf = await this.#cursor.read(5000);
    this.#pos = 0;
    if (this.#buf.length === 0) {
      this.#done = true;
      return undefined;
    }
    return this.#buf[0];
  }

  take(): void {
    this.#pos++;
  }

  async close(): Promise<void> {
    await this.#cursor.close();
  }
}

export interface FoundConflict {
  /** The key's text form (`ROW(k...)::text`), to find it again in SQL. */
  keyText: string;
  key: RowKey;
  contenders: Contender[];
}

/**
 * Keys present in two or more of the sources' key tables. Memory holds the conflicts (not
 * every changed key); the sources' connections are free again when this returns.
 */
export async function findConflicts(sources: Session[], t: TableInfo, i: number): Promise<FoundConflict[]> {
  const found: FoundConflict[] = [];
  const streams = sources.map((s) => new KeyStream(s, t, i));
  try {
    for (;;) {
      let min: Buffer | undefined;
      const heads: { s: KeyStream; row: KeyRow; kb: Buffer }[] = [];
      for (const s of streams) {
        const row = await s.peek();
        if (!row) continue;
        const kb = Buffer.from(row.kt, 'utf8');
        heads.push({ s, row, kb });
        if (!min || Buffer.compare(kb, min) < 0) min = kb;
      }
      if (!min) return found;
      const same = heads.filter((h) => Buffer.compare(h.kb, min!) === 0);
      for (const h of same) h.s.take();
      if (same.length > 1) {
        const first = same[0]!.row;
        const key: RowKey = {};
        for (const k of t.key) key[k] = first[k];
        found.push({
          keyText: first.kt,
          key,
          contenders: same.map((h) => ({ db: h.s.db, changedAt: h.row.changed_at, micros: Number(h.row.micros) })),
        });
      }
    }
  } finally {
    for (const s of streams) await s.close().catch(() => undefined);
  }
}

/** Removes keys (by text form) from a source's key table: that source does not send them. */
export async function dropKeys(session: Session, t: TableInfo, i: number, keyTexts: string[]): Promise<void> {
  for (let at = 0; at < keyTexts.length; at += 10_000) {
    await session.query(
      `DELETE FROM pg_temp.${ident(keyTable(i))} WHERE ROW(${identList(t.key)})::text = ANY($1::text[])`,
      [keyTexts.slice(at, at + 10_000)],
    );
  }
}

/** The current row of a key on a source (as node-postgres parses it), or null. */
export async function currentRow(session: Session, t: TableInfo, key: RowKey): Promise<Record<string, unknown> | null> {
  const r = await session.query(
    `SELECT * FROM ${ident(t.schema)}.${ident(t.name)} WHERE (${identList(t.key)}) = (${t.key.map((_, n) => `$${n + 1}`).join(', ')})`,
    t.key.map((k) => key[k]),
  );
  return r.rows[0] ?? null;
}
