/**
 * What a sync has not delivered yet on a source, read from the delta tables and the sync's
 * watermark (so any process sees it, whether or not it ever ran the sync): the changed keys
 * not yet delivered and the age of the oldest change; and, for read-your-writes, whether the
 * changes committed before a snapshot are all delivered.
 */
import type pg from 'pg';
import type { Database } from '../db/database.js';
import { ident, identList, type QualifiedName } from '../sql/ident.js';
import { deltaTableName } from '../sql/names.js';

/** What one sync reads on one source. */
export interface BacklogScope {
  schema: string;
  sync: string;
  cascade: boolean;
  /** The sync's tables and sequences (sequences have no deltas and are skipped). */
  relations: readonly QualifiedName[];
}

export interface Backlog {
  /** Changed keys not yet delivered. */
  keys: number;
  /** Age of the oldest of them by the source's clock, in ms (0 when none). */
  lagMs: number;
}

/** Columns of a delta table besides the key columns. */
const DELTA_COLUMNS = ['txid', 'changed_at', 'applied_by', 'origin'];

interface DeltaTable {
  table: string;
  key: string[];
}

/** The delta tables of the scope's relations that exist on the source, with their key columns. */
async function deltaTables(c: pg.PoolClient, scope: BacklogScope): Promise<DeltaTable[]> {
  const names = scope.relations.map((r) => deltaTableName(r));
  const r = await c.query<{ table: string; key: string[] }>(
    `SELECT c.relname AS table, array_agg(a.attname::text ORDER BY a.attnum) AS key
       FROM pg_catalog.pg_class c
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      WHERE n.nspname = $1 AND c.relname = ANY($2::text[]) AND a.attname <> ALL($3::text[])
      GROUP BY c.relname ORDER BY c.relname`,
    [scope.schema, names, DELTA_COLUMNS],
  );
  return r.rows;
}

/**
 * The sync's watermark on this source as a CTE `mark(snap)`: no row when it never ran, and a
 * NULL snapshot when the watermark comes from another server (its ids mean nothing here).
 */
export function markCte(schema: string): string {
  return `mark AS (
    SELECT CASE WHEN to_jsonb(w) ->> 'system_id' IS NULL
                  OR to_jsonb(w) ->> 'system_id' = (SELECT system_identifier::text FROM pg_catalog.pg_control_system())
                THEN w.snapshot END AS snap
      FROM ${ident(schema)}.watermark w WHERE w.sync = $1)`;
}

/** Deltas of the sync not delivered yet (the predicate of `collectChanged` without the bound). */
export function undelivered(scope: Pick<BacklogScope, 'cascade'>): string {
  return `((SELECT snap FROM mark) IS NULL OR NOT pg_visible_in_snapshot(d.txid, (SELECT snap FROM mark)))
          AND d.applied_by IS DISTINCT FROM $1 ${scope.cascade ? '' : 'AND d.applied_by IS NULL'}`;
}

/** The backlog of one sync on one source: a catalog query, then one query over its delta tables. */
export async function readBacklog(db: Database, scope: BacklogScope): Promise<Backlog> {
  return db.transaction(async (c) => {
    // No delta table: nothing is captured here (not installed, or sequences only).
    const tables = await deltaTables(c, scope);
    if (tables.length === 0) return { keys: 0, lagMs: 0 };
    const parts = tables.map(
      (t) => `SELECT count(*) AS n, min(oldest) AS oldest FROM (
                SELECT min(d.changed_at) AS oldest FROM ${ident(scope.schema)}.${ident(t.table)} d
                 WHERE ${undelivered(scope)} GROUP BY ${identList(t.key)}) k`,
    );
    const r = await c.query<{ keys: string; lag_ms: string }>(
      `WITH ${markCte(scope.schema)}, per_table AS (${parts.join('\n UNION ALL\n')})
       SELECT coalesce(sum(n), 0)::text AS keys,
              coalesce(floor(extract(epoch FROM clock_timestamp() - min(oldest)) * 1000), 0)::text AS lag_ms
         FROM per_table`,
      [scope.sync],
    );
    return { keys: Number(r.rows[0]!.keys), lagMs: Math.max(0, Number(r.rows[0]!.lag_ms)) };
  });
}

/** The source's current snapshot: every transaction committed before it is visible in it. */
export async function currentSnapshot(db: Database): Promise<string> {
  const rows = await db.query<{ snapshot: string }>(`SELECT pg_current_snapshot()::text AS snapshot`);
  return rows[0]!.snapshot;
}

/**
 * Whether every change of the sync committed on the source before `snapshot` was delivered:
 * the sync has a watermark here and no delta (or TRUNCATE) of its tables is visible in
 * `snapshot` without being visible in it.
 */
export async function deliveredUpTo(db: Database, scope: BacklogScope, snapshot: string): Promise<boolean> {
  return db.transaction(async (c) => {
    const tables = await deltaTables(c, scope);
    // No delta table: nothing is captured here, so there is nothing to wait for.
    if (tables.length === 0) return true;
    const s = ident(scope.schema);
    const before = `pg_visible_in_snapshot(d.txid, $2::pg_snapshot) AND ${undelivered(scope)}`;
    const parts = [
      ...tables.map((t) => `SELECT 1 FROM ${s}.${ident(t.table)} d WHERE ${before}`),
      `SELECT 1 FROM ${s}.truncates d WHERE (d.table_schema, d.table_name) IN (SELECT * FROM unnest($3::text[], $4::text[])) AND ${before}`,
    ];
    const r = await c.query<{ marked: boolean; pending: boolean }>(
      `WITH ${markCte(scope.schema)}
       SELECT EXISTS (SELECT 1 FROM mark WHERE snap IS NOT NULL) AS marked,
              EXISTS (${parts.join('\n UNION ALL\n')}) AS pending`,
      [scope.sync, snapshot, scope.relations.map((x) => x.schema), scope.relations.map((x) => x.name)],
    );
    return r.rows[0]!.marked && !r.rows[0]!.pending;
  });
}
