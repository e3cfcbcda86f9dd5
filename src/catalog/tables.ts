/**
 * The catalog: everything pgferry reads from a database's system catalogs goes through here
 * (tables, keys, columns and their types, foreign keys, sequences, whether a relation exists).
 * One round trip per question; the rest of pgferry asks this module.
 */
import type pg from 'pg';
import { PgferryError } from '../errors.js';
import { displayName, qualified as qualifiedSql, type QualifiedName } from '../sql/ident.js';

export interface ColumnInfo {
  name: string;
  /** `format_type` of the column, e.g. `numeric(30,10)`, `"Mood"`. */
  type: string;
  /** The type's OID, and its element type's OID for arrays (0 otherwise). */
  typeOid: number;
  elemOid: number;
  notNull: boolean;
  /** Stored generated column: computed by each database, never copied. */
  generated: boolean;
  /** 'a' (GENERATED ALWAYS AS IDENTITY), 'd' (BY DEFAULT) or ''. */
  identity: '' | 'a' | 'd';
}

export interface TableInfo extends QualifiedName {
  kind: 'table' | 'sequence';
  oid: number;
  /** Every column in table order (generated ones included). */
  columns: ColumnInfo[];
  /** Key columns (primary key, else a non-null unique index), in index order; empty when none. */
  key: string[];
  /** Tables (by display name) this one references through foreign keys. */
  references: string[];
}

type Queryable = Pick<pg.ClientBase, 'query'>;

/** Looks a table or sequence up (one round trip); null when it does not exist. */
export async function readTable(db: Queryable, q: QualifiedName): Promise<TableInfo | null> {
  // Key: the primary key, else the unique, non-partial, plain-column index with the fewest
  // columns, all NOT NULL.
  const r = await db.query<{
    oid: number;
    relkind: string;
    columns: { name: string; type: string; oid: number; elem: number; notnull: boolean; generated: string; identity: string }[] | null;
    key: string[] | null;
    refs: { schema: string; name: string }[] | null;
  }>(
    `SELECT c.oid::int AS oid, c.relkind::text AS relkind,
            (SELECT json_agg(json_build_object('name', a.attname, 'type', pg_catalog.format_type(a.atttypid, a.atttypmod),
                                               'oid', a.atttypid::int, 'elem', coalesce(ty.typelem, 0)::int,
                                               'notnull', a.attnotnull, 'generated', a.attgenerated::text,
                                               'identity', a.attidentity::text) ORDER BY a.attnum)
               FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
            (SELECT array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                            JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                           ORDER BY k.ord)::text[]
               FROM pg_catalog.pg_index i
              WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid AND i.indimmediate
                AND i.indpred IS NULL AND i.indexprs IS NULL
                AND NOT EXISTS (SELECT 1 FROM unnest(i.indkey) AS k(attnum)
                                 WHERE k.attnum <= 0 OR NOT (SELECT attnotnull FROM pg_catalog.pg_attribute
                                                              WHERE attrelid = i.indrelid AND attnum = k.attnum))
              ORDER BY i.indisprimary DESC, i.indnatts, i.indexrelid LIMIT 1) AS key,
            (SELECT json_agg(DISTINCT jsonb_build_object('schema', rn.nspname, 'name', rc.relname))
               FROM pg_catalog.pg_constraint f
               JOIN pg_catalog.pg_class rc ON rc.oid = f.confrelid
               JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace
              WHERE f.conrelid = c.oid AND f.contype = 'f' AND f.confrelid <> f.conrelid) AS refs
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'S')`,
    [q.schema, q.name],
  );
  const row = r.rows[0];
  if (!row) return null;
  if (row.relkind === 'S') return { ...q, kind: 'sequence', oid: row.oid, columns: [], key: [], references: [] };
  return {
    ...q,
    kind: 'table',
    oid: row.oid,
    columns: (row.columns ?? []).map((c) => ({
      name: c.name,
      type: c.type,
      typeOid: c.oid,
      elemOid: c.elem,
      notNull: c.notnull,
      generated: c.generated !== '',
      identity: (c.identity === 'a' || c.identity === 'd' ? c.identity : '') as ColumnInfo['identity'],
    })),
    key: row.key ?? [],
    references: (row.refs ?? []).map((x) => displayName(x)),
  };
}

/** Reads a table that must exist, else TABLE_NOT_FOUND naming it and the database. */
export async function requireTable(db: Queryable, q: QualifiedName, database: string): Promise<TableInfo> {
  const t = await readTable(db, q);
  if (!t) {
    throw new PgferryError(
      'TABLE_NOT_FOUND',
      `Table ${displayName(q)} does not exist on database "${database}". Create it there (same columns) or remove it from the sync.`,
      { database, table: displayName(q) },
    );
  }
  return t;
}

/** Orders tables so that referenced tables come before the tables that reference them. */
export function orderByDependencies<T extends { name: string; schema: string; references: string[] }>(tables: T[]): T[] {
  const byName = new Map(tables.map((t) => [displayName(t), t]));
  const out: T[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (t: T): void => {
    const n = displayName(t);
    if (state.get(n)) return; // done, or a cycle (no order satisfies both sides of one)
    state.set(n, 'visiting');
    for (const r of t.references) {
      const dep = byName.get(r);
      if (dep) visit(dep);
    }
    state.set(n, 'done');
    out.push(t);
  };
  for (const t of tables) visit(t);
  return out;
}

/** Columns that travel: every column except stored generated ones (the target computes those). */
export function copiedColumns(t: TableInfo): string[] {
  return t.columns.filter((c) => !c.generated).map((c) => c.name);
}

/** First OID of user-defined objects: types below it are built in. */
const FIRST_USER_OID = 16384;

/**
 * Whether rows of `columns` can travel as binary COPY between two databases: the same built-in
 * type for every column on both sides (binary forms of user types may differ between servers).
 */
export function binaryCompatible(source: TableInfo, receiver: TableInfo, columns: readonly string[]): boolean {
  return columns.every((name) => {
    const x = source.columns.find((c) => c.name === name);
    const y = receiver.columns.find((c) => c.name === name);
    return !!x && !!y && x.typeOid === y.typeOid && x.typeOid < FIRST_USER_OID && x.elemOid < FIRST_USER_OID;
  });
}

/** Whether a table (or any relation) of that name exists. */
export async function relationExists(db: Queryable, q: QualifiedName): Promise<boolean> {
  const r = await db.query(
    `SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`,
    [q.schema, q.name],
  );
  return (r.rowCount ?? 0) > 0;
}

export interface SequenceState {
  lastValue: bigint;
  isCalled: boolean;
  increment: bigint;
  min: bigint;
  max: bigint;
  start: bigint;
  cycle: boolean;
}

/** A sequence's position and parameters (one round trip). */
export async function readSequence(db: Queryable, q: QualifiedName & { oid?: number }): Promise<SequenceState> {
  const r = await db.query<{ last_value: string; is_called: boolean; inc: string; min: string; max: string; start: string; cycle: boolean }>(
    `SELECT v.last_value::text, v.is_called, p.seqincrement::text AS inc, p.seqmin::text AS min, p.seqmax::text AS max,
            p.seqstart::text AS start, p.seqcycle AS cycle
       FROM ${qualifiedSql(q)} v,
            pg_catalog.pg_sequence p
      WHERE p.seqrelid = (SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                           WHERE n.nspname = $1 AND c.relname = $2)`,
    [q.schema, q.name],
  );
  const row = r.rows[0]!;
  return {
    lastValue: BigInt(row.last_value),
    isCalled: row.is_called,
    increment: BigInt(row.inc),
    min: BigInt(row.min),
    max: BigInt(row.max),
    start: BigInt(row.start),
    cycle: row.cycle,
  };
}

/** The planner's estimate of a table's rows (-1 when never analyzed). */
export async function estimateRows(db: Queryable, t: { oid: number }): Promise<number> {
  const r = await db.query<{ n: number }>(`SELECT reltuples::float8 AS n FROM pg_catalog.pg_class WHERE oid = $1`, [t.oid]);
  const n = r.rows[0]?.n ?? -1;
  return n < 0 ? -1 : Math.round(n);
}
