/**
 * validate(): compares every table of a sync across its databases, row by row in key order
 * (a cursor per database, merged), and reports the keys whose rows differ or are missing.
 * Memory holds one batch per database plus the reported differences.
 */
import Cursor from 'pg-cursor';
import { copiedColumns, requireTable, type TableInfo } from '../catalog/tables.js';
import type { Database } from '../db/database.js';
import { Session } from '../db/session.js';
import { displayName, identList, qualified } from '../sql/ident.js';
import type { RowKey } from '../types.js';
import type { SyncPlan } from '../plan.js';

export interface TableDifference {
  key: RowKey;
  /** Databases without a row for the key. */
  missingOn: string[];
  /** Databases whose row differs from the first database's row that has one. */
  differsOn: string[];
}

export interface TableValidation {
  rows: Record<string, number>;
  equal: boolean;
  differences: TableDifference[];
  /** True when more differences existed than were listed. */
  truncated: boolean;
}

export interface ValidationResult {
  sync: string;
  equal: boolean;
  tables: Record<string, TableValidation>;
}

interface Line {
  kt: string;
  h: string;
  [k: string]: unknown;
}

const MAX_LISTED = 1000;

export async function validateSync(plan: SyncPlan, dbs: ReadonlyMap<string, Database>): Promise<ValidationResult> {
  const sessions: Session[] = [];
  try {
    for (const d of plan.databases) {
      const s = await Session.open(dbs.get(d.name)!);
      sessions.push(s);
      await s.begin('repeatable read');
    }
    const out: ValidationResult = { sync: plan.name, equal: true, tables: {} };
    const first = sessions[0]!;
    for (const rel of plan.relations) {
      const t = await requireTable(first.client, rel, first.name);
      if (t.kind !== 'table') continue;
      const v = await compareTable(sessions, t);
      out.tables[displayName(t)] = v;
      if (!v.equal) out.equal = false;
    }
    return out;
  } finally {
    for (const s of sessions) await s.close();
  }
}

async function compareTable(sessions: Session[], t: TableInfo): Promise<TableValidation> {
  // Without a key, whole rows are the key (a multiset comparison).
  const cols = copiedColumns(t);
  const keyCols = t.key.length > 0 ? t.key : cols;
  const sql = `SELECT ROW(${identList(keyCols)})::text COLLATE "C" AS kt, md5(ROW(${identList(cols)})::text) AS h, ${identList(keyCols)}
                 FROM ONLY ${qualified(t)} ORDER BY 1`;
  const cursors = sessions.map((s) => ({ name: s.name, cur: s.client.query(new Cursor<Line>(sql)), buf: [] as Line[], pos: 0, done: false, n: 0 }));
  const peek = async (c: (typeof cursors)[number]): Promise<Line | undefined> => {
    if (c.pos < c.buf.length) return c.buf[c.pos];
    if (c.done) return undefined;
    c.buf = await c.cur.read(5000);
    c.pos = 0;
    if (c.buf.length === 0) c.done = true;
    return c.buf[0];
  };
  const v: TableValidation = { rows: {}, equal: true, differences: [], truncated: false };
  try {
    for (;;) {
      let min: Buffer | undefined;
      const heads: { c: (typeof cursors)[number]; line: Line; kb: Buffer }[] = [];
      for (const c of cursors) {
        const line = await peek(c);
        if (!line) continue;
        const kb = Buffer.from(line.kt, 'utf8');
        heads.push({ c, line, kb });
        if (!min || Buffer.compare(kb, min) < 0) min = kb;
      }
      if (!min) break;
      const same = heads.filter((h) => Buffer.compare(h.kb, min!) === 0);
      for (const h of same) {
        h.c.pos++;
        h.c.n++;
      }
      const missingOn = cursors.filter((c) => !same.some((h) => h.c === c)).map((c) => c.name);
      const ref = same[0]!.line.h;
      const differsOn = same.filter((h) => h.line.h !== ref).map((h) => h.c.name);
      if (missingOn.length || differsOn.length) {
        v.equal = false;
        if (v.differences.length < MAX_LISTED) {
          const key: RowKey = {};
          for (const k of keyCols) key[k] = same[0]!.line[k];
          v.differences.push({ key, missingOn, differsOn });
        } else {
          v.truncated = true;
        }
      }
    }
  } finally {
    for (const c of cursors) await c.cur.close().catch(() => undefined);
  }
  for (const c of cursors) v.rows[c.name] = c.n;
  return v;
}
