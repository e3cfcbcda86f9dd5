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
  /** `COLLATE` clause for a collation other than the type's default (quoted, qualified), else null. */
  collation: string | null;
  /** False for a nondeterministic collation (values can be equal yet differ in bytes). */
  deterministic: boolean;
  notNull: boolean;
  /** Stored generated column: computed by each database, never copied. */
  generated: boolean;
  /** 'a' (GENERATED ALWAYS AS IDENTITY), 'd' (BY DEFAULT) or ''. */
  identity: '' | 'a' | 'd';
}

/** A foreign key of a table onto another table. */
export interface ForeignKey {
  /** The referenced table's display name. */
  table: string;
  /** Columns of this table, and the referenced columns they match, in order. */
  columns: string[];
  refColumns: string[];
}

export interface TableInfo extends QualifiedName {
  kind: 'table' | 'sequence';
  oid: number;
  /** The owning role. */
  owner: string;
  /** Whether the role reading the catalog is the owner or a member of it. */
  ownedByMe: boolean;
  /** Every column in table order (generated ones included). */
  columns: ColumnInfo[];
  /** Key columns (primary key, else a non-null unique index), in index order; empty when none. */
  key: string[];
  /**
   * The key index's equality operator for each key column, as `OPERATOR(schema.=)`: what
   * "same key" means for this table (citext, numeric scale and collations included).
   */
  keyOps: string[];
  /**
   * Per key column, the qualified type that operator takes when it lives outside pg_catalog
   * ('' otherwise): comparisons cast to it (see keyJoin).
   */
  keyCasts?: string[];
  /**
   * Every key column's operator class is its type's default: the key's equality is also what
   * DISTINCT, UNION and EXCEPT use for those columns.
   */
  keyOpsDefault: boolean;
  /** Tables (by display name) this one references through foreign keys. */
  references: string[];
  foreignKeys: ForeignKey[];
}

type Queryable = Pick<pg.ClientBase, 'query'>;

interface TableRow {
  oid: number;
  relkind: string;
  owner: string;
  mine: boolean;
  columns: { name: string; type: string; oid: number; elem: number; coll: string | null; det: boolean; notnull: boolean; generated: string; identity: string }[] | null;
  key: { col: string; op: string; def: boolean; cast: string }[] | null;
  fks: { schema: string; name: string; cols: string[]; refcols: string[] }[] | null;
}

/** Looks a table or sequence up (one round trip); null when it does not exist. */
export async function readTable(db: Queryable, q: QualifiedName): Promise<TableInfo | null> {
  // Key: the primary key, else the unique, non-partial, plain-column index with the fewest
  // columns, all NOT NULL; with the btree equality operator of each column's operator class.
  const r = await db.query<TableRow>(
    `SELECT c.oid::int AS oid, c.relkind::text AS relkind, pg_catalog.pg_get_userbyid(c.relowner)::text AS owner,
            pg_catalog.pg_has_role(c.relowner, 'MEMBER') AS mine,
            (SELECT pg_catalog.json_agg(pg_catalog.json_build_object('name', a.attname, 'type', pg_catalog.format_type(a.atttypid, a.atttypmod),
                                               'oid', a.atttypid::int, 'elem', coalesce(ty.typelem, 0)::int,
                                               'coll', CASE WHEN a.attcollation <> 0 AND a.attcollation <> ty.typcollation
                                                            THEN pg_catalog.format('%I.%I', cn.nspname, co.collname) END,
                                               'det', coalesce(co.collisdeterministic, true),
                                               'notnull', a.attnotnull, 'generated', a.attgenerated::text,
                                               'identity', a.attidentity::text) ORDER BY a.attnum)
               FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
               LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
               LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
            (SELECT (SELECT pg_catalog.json_agg(pg_catalog.json_build_object('col', a.attname,
                                                       'op', pg_catalog.format('OPERATOR(%I.%s)', opn.nspname, op.oprname), 'def', oc.opcdefault,
                                                       'cast', CASE WHEN opn.nspname OPERATOR(pg_catalog.=) 'pg_catalog' OR ity.typtype OPERATOR(pg_catalog.=) 'p' THEN ''
                                                                    ELSE pg_catalog.format('%I.%I', itn.nspname, ity.typname) END) ORDER BY k.ord)
                       FROM ROWS FROM (pg_catalog.unnest(i.indkey::int2[]), pg_catalog.unnest(i.indclass::oid[])) WITH ORDINALITY AS k(attnum, opclass, ord)
                       JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                       JOIN pg_catalog.pg_opclass oc ON oc.oid = k.opclass
                       JOIN pg_catalog.pg_amop ao ON ao.amopfamily = oc.opcfamily AND ao.amoplefttype = oc.opcintype
                                                 AND ao.amoprighttype = oc.opcintype AND ao.amopstrategy = 3
                                                 AND ao.amopmethod = oc.opcmethod
                       JOIN pg_catalog.pg_operator op ON op.oid = ao.amopopr
                       JOIN pg_catalog.pg_namespace opn ON opn.oid = op.oprnamespace
                       JOIN pg_catalog.pg_type ity ON ity.oid = oc.opcintype
                       JOIN pg_catalog.pg_namespace itn ON itn.oid = ity.typnamespace)
               FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
              WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid AND i.indimmediate
                AND i.indpred IS NULL AND i.indexprs IS NULL
                AND ic.relam = (SELECT oid FROM pg_catalog.pg_am WHERE amname = 'btree')
                AND NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(i.indkey) AS k(attnum)
                                 WHERE k.attnum <= 0 OR NOT (SELECT attnotnull FROM pg_catalog.pg_attribute
                                                              WHERE attrelid = i.indrelid AND attnum = k.attnum))
              ORDER BY i.indisprimary DESC, i.indnatts, i.indexrelid LIMIT 1) AS key,
            (SELECT pg_catalog.json_agg(pg_catalog.json_build_object('schema', rn.nspname, 'name', rc.relname,
                       'cols', (SELECT pg_catalog.array_agg(a.attname ORDER BY k.ord) FROM pg_catalog.unnest(f.conkey) WITH ORDINALITY k(attnum, ord)
                                  JOIN pg_catalog.pg_attribute a ON a.attrelid = f.conrelid AND a.attnum = k.attnum),
                       'refcols', (SELECT pg_catalog.array_agg(a.attname ORDER BY k.ord) FROM pg_catalog.unnest(f.confkey) WITH ORDINALITY k(attnum, ord)
                                     JOIN pg_catalog.pg_attribute a ON a.attrelid = f.confrelid AND a.attnum = k.attnum)) ORDER BY f.conname)
               FROM pg_catalog.pg_constraint f
               JOIN pg_catalog.pg_class rc ON rc.oid = f.confrelid
               JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace
              WHERE f.conrelid = c.oid AND f.contype = 'f' AND f.confrelid <> f.conrelid) AS fks
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'S')`,
    [q.schema, q.name],
  );
  const row = r.rows[0];
  if (!row) return null;
  const base = { ...q, oid: row.oid, owner: row.owner, ownedByMe: row.mine };
  if (row.relkind === 'S') return { ...base, kind: 'sequence', columns: [], key: [], keyOps: [], keyOpsDefault: true, references: [], foreignKeys: [] };
  const foreignKeys = (row.fks ?? []).map((f) => ({ table: displayName(f), columns: f.cols, refColumns: f.refcols }));
  return {
    ...base,
    kind: 'table',
    columns: (row.columns ?? []).map((c) => ({
      name: c.name,
      type: c.type,
      typeOid: c.oid,
      elemOid: c.elem,
      collation: c.coll,
      deterministic: c.det,
      notNull: c.notnull,
      generated: c.generated !== '',
      identity: (c.identity === 'a' || c.identity === 'd' ? c.identity : '') as ColumnInfo['identity'],
    })),
    key: (row.key ?? []).map((k) => k.col),
    keyOps: (row.key ?? []).map((k) => k.op),
    keyCasts: (row.key ?? []).map((k) => k.cast),
    keyOpsDefault: (row.key ?? []).every((k) => k.def),
    references: [...new Set(foreignKeys.map((f) => f.table))],
    foreignKeys,
  };
}

/** Reads a table that must exist, else TABLE_NOT_FOUND naming it and the database. */
export async function requireTable(db: Queryable, q: QualifiedName, database: string): Promise<TableInfo> {
  const t = await readTable(db, q);
  if (!t) throw tableNotFound(q, database);
  return t;
}

export function tableNotFound(q: QualifiedName, database: string): PgferryError {
  return new PgferryError(
    'TABLE_NOT_FOUND',
    `Table ${displayName(q)} does not exist on database "${database}". Create it there (same columns) or remove it from the sync.`,
    { database, table: displayName(q) },
  );
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

/**
 * Built-in types whose equal values always print the same (in pgferry's pinned settings).
 * numeric (1.0 = 1.00), floats (0 = -0), interval ('1 day' = '24 hours'), citext and the like
 * are not among them.
 */
const CANONICAL_TYPES = new Set([16, 17, 18, 19, 20, 21, 23, 25, 26, 1042, 1043, 1082, 1083, 1114, 1184, 2950]);

/** Whether two equal keys of this table always have the same text (see CANONICAL_TYPES; collations deterministic). */
export function canonicalKey(t: TableInfo): boolean {
  return t.key.every((k) => {
    const c = t.columns.find((x) => x.name === k);
    return !!c && CANONICAL_TYPES.has(c.typeOid) && c.deterministic;
  });
}
