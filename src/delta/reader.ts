/**
 * The delta reader. A run reads each source in one REPEATABLE READ transaction and takes its
 * snapshot as the new watermark; the changes of the run are the deltas whose transaction is
 * visible in that snapshot but was not visible in the previous watermark. Commit order and
 * transaction id order differ under concurrency; a snapshot watermark does not care.
 *
 * The changed keys of each table go into a temporary table on the source (one row per key,
 * with the newest change time and where the change was first written), so the rows can be
 * copied out with one COPY per target and nothing waits in memory.
 */
import createDebug from 'debug';
import type { TableInfo } from '../catalog/tables.js';
import { pipeCopy } from '../db/copy.js';
import type { Session } from '../db/session.js';
import { displayName, ident, identList, literal, shortHash, type QualifiedName } from '../sql/ident.js';
import { keyColumnType } from '../capture/ddl.js';
import { TABLES_PER_STATEMENT, deltaTableName, type TempNames } from '../sql/names.js';

const debug = createDebug('pgferry:delta');

export interface SourceRead {
  session: Session;
  /** The snapshot this run reads at (becomes the watermark when the run commits). */
  snapshot: string;
  /** The watermark of the previous completed run, or null before the first. */
  previous: string | null;
  /** When asked for (openSource), the run's generation from this read transaction (apply/fence.ts). */
  generation?: { value: bigint; origin: string };
}

export { openFirstSource, openSource, probeSql } from './open.js';

/** What identifies the changes a sync reads: the library schema, the sync, and whether it cascades. */
export interface ReadScope {
  schema: string;
  sync: string;
  cascade: boolean;
}

/** What a source changed in a table since the previous watermark (see collectChanged). */
export interface Changed {
  /** Keys in the key table, numbered 1..keys. */
  keys: number;
  /** The newest TRUNCATE since, in microseconds since the epoch, if any. */
  truncatedAt: number | null;
}

/**
 * Fills the source's temporary key table of each table (`temp.keys`) with its keys changed
 * since the previous watermark, and finds its newest TRUNCATE since then: every table in one
 * statement. Changes that this sync applied itself are never read back (no echo); changes
 * applied by other syncs are read only with `cascade`. Results are in the order of `tables`.
 */
export async function collectChanged(src: SourceRead, scope: ReadScope, tables: readonly { info: TableInfo; temp: TempNames }[]): Promise<Changed[]> {
  const out: Changed[] = [];
  for (let i = 0; i < tables.length; i += TABLES_PER_STATEMENT) out.push(...(await collectBatch(src, scope, tables.slice(i, i + TABLES_PER_STATEMENT))));
  for (const [i, { info, temp }] of tables.entries()) {
    // Without statistics the planner takes a fresh key table for thousands of rows and scans
    // the whole table to join it, even for one changed key.
    await src.session.analyzeTemp(temp.keys, out[i]!.keys);
    debug('%s: %d changed keys in %s', src.session.name, out[i]!.keys, displayName(info));
  }
  return out;
}

async function collectBatch(src: SourceRead, scope: ReadScope, tables: readonly { info: TableInfo; temp: TempNames }[]): Promise<Changed[]> {
  const { schema, sync, cascade } = scope;
  const s = ident(schema);
  for (const { info, temp } of tables) await createKeyTable(src.session, schema, info, temp);
  const since = src.previous === null
    ? 'true'
    : `txid >= pg_snapshot_xmin($4::pg_snapshot) AND NOT pg_visible_in_snapshot(txid, $4::pg_snapshot)`;
  const mine = `applied_by IS DISTINCT FROM $1 ${cascade ? '' : 'AND applied_by IS NULL'}`;
  const fills = tables.map(({ info, temp }, i) => {
    const keys = identList(info.key);
    return `f${i} AS (
       INSERT INTO ${ident(temp.keys)}
       SELECT ${keys}, max(changed_at),
              CASE WHEN min(coalesce(origin, '')) = max(coalesce(origin, '')) THEN max(origin) END,
              row_number() OVER ()
         FROM ${s}.${ident(deltaTableName(info))}
        WHERE ${since} AND ${mine}
        GROUP BY ${keys}
       RETURNING 1)`;
  });
  const results = tables.map(
    (_, i) => `SELECT ${i} AS i, (SELECT count(*) FROM f${i})::text AS n,
            (SELECT (extract(epoch FROM max(changed_at)) * 1000000::numeric)::bigint::text
               FROM ${s}.truncates
              WHERE table_schema = ($2::text[])[${i + 1}] AND table_name = ($3::text[])[${i + 1}] AND ${since} AND ${mine}) AS micros`,
  );
  const values: unknown[] = [sync, tables.map((t) => t.info.schema), tables.map((t) => t.info.name)];
  if (src.previous !== null) values.push(src.previous);
  const r = await src.session.prepared<{ i: number; n: string; micros: string | null }>(`WITH ${fills.join(',\n     ')}\n     ${results.join('\n     UNION ALL\n     ')}`, values);
  const out: Changed[] = tables.map(() => ({ keys: 0, truncatedAt: null }));
  for (const x of r.rows) out[x.i] = { keys: Number(x.n), truncatedAt: x.micros === null ? null : Number(x.micros) };
  return out;
}

async function createKeyTable(session: Session, schema: string, table: TableInfo, temp: TempNames): Promise<void> {
  // The key types are part of the definition: a pooled connection's key table made before a
  // key was widened (install() widens the delta table too) is made again, not reused.
  const types = table.key.map((k) => keyColumnType(table, k)).join(', ');
  await session.tempTable(
    temp.keys,
    `CREATE TEMP TABLE ${ident(temp.keys)} ON COMMIT DELETE ROWS AS
       SELECT ${identList(table.key)}, changed_at, origin AS pgferry_origin, 0::bigint AS pgferry_n
         FROM ${ident(schema)}.${ident(deltaTableName(table))} WITH NO DATA /* key types ${shortHash(types)} */`,
  );
}

/** Copies a key table from one session to another on the same database (COPY, no parsing). */
export async function copyKeyTable(from: Session, to: Session, schema: string, table: TableInfo, temp: TempNames): Promise<void> {
  await createKeyTable(to, schema, table, temp);
  const kt = `pg_temp.${ident(temp.keys)}`;
  await pipeCopy(from, to, `COPY ${kt} TO STDOUT`, `COPY ${kt} FROM STDIN`);
}

/** Indexes a key table by key number, so each chunk of a large backlog is a range read. */
export async function indexKeyTable(src: SourceRead, temp: TempNames): Promise<void> {
  await src.session.query(`CREATE INDEX IF NOT EXISTS ${ident(temp.keys + '_n')} ON pg_temp.${ident(temp.keys)} (pgferry_n)`);
}

/** Forgets keys changed before `micros` (a TRUNCATE after them wins). Returns how many are left. */
export async function dropKeysBefore(src: SourceRead, temp: TempNames, micros: number): Promise<number> {
  const kt = ident(temp.keys);
  await src.session.query(`DELETE FROM ${kt} WHERE (extract(epoch FROM changed_at) * 1000000::numeric)::bigint < $1`, [micros]);
  const r = await src.session.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${kt}`);
  return Number(r.rows[0]!.n);
}

/**
 * Moves the sync's watermark to the snapshot of this run and commits the read transaction,
 * in one round trip; with `unlock`, the run lock goes in it too.
 */
export async function commitWatermark(src: SourceRead, schema: string, sync: string, options: { durable?: boolean; unlock?: boolean } = {}): Promise<void> {
  const { durable = false } = options;
  // With one source, losing this commit to a server crash only makes the next run apply the
  // same changes again (idempotent), so it need not wait for the disk. With several, one
  // source's watermark lost while another's stayed would make the next run see an old change
  // as new against a newer one elsewhere: those commits wait for the disk (`durable`). The
  // server's identifier goes with it: a watermark restored onto another server is not trusted
  // (see open.ts).
  await src.session.commit(
    `${durable ? '' : `SET LOCAL synchronous_commit = off; `}INSERT INTO ${ident(schema)}.watermark (sync, snapshot, system_id)
     SELECT ${literal(sync)}, ${literal(src.snapshot)}::pg_catalog.pg_snapshot, (SELECT system_identifier FROM pg_catalog.pg_control_system())
     ON CONFLICT (sync) DO UPDATE SET snapshot = EXCLUDED.snapshot, system_id = EXCLUDED.system_id, updated_at = pg_catalog.now()`,
    { unlock: options.unlock },
  );
}

/**
 * Deletes the deltas (and TRUNCATE records) of `table` that every sync reading it has
 * delivered: those whose transaction is older than the oldest watermark's xmin, so they are
 * visible in every watermark. A sync that never ran keeps everything. Row locks only: writers
 * go on while it runs.
 */
export async function pruneDeltas(session: Session, schema: string, table: QualifiedName & { key: string[] }): Promise<number> {
  const s = ident(schema);
  // Delivered = visible in the watermark of every sync that reads the table. Bounded by the
  // smallest xmax (the index does the range); a sync that never ran keeps everything.
  const r = await session.query<{ n: string }>(
    `WITH marks AS (
       SELECT w.snapshot FROM ${s}.sync_tables st LEFT JOIN ${s}.watermark w ON w.sync = st.sync
        WHERE st.table_schema = $1 AND st.table_name = $2),
     bound AS (
       SELECT CASE WHEN pg_catalog.bool_and(snapshot IS NOT NULL) THEN min(pg_snapshot_xmax(snapshot)) END AS xmax FROM marks),
     deltas AS (
       DELETE FROM ${s}.${ident(deltaTableName(table))} d
        WHERE d.txid < (SELECT xmax FROM bound)
          AND NOT EXISTS (SELECT 1 FROM marks m WHERE NOT pg_visible_in_snapshot(d.txid, m.snapshot))
       RETURNING 1),
     truncs AS (
       DELETE FROM ${s}.truncates x
        WHERE x.table_schema = $1 AND x.table_name = $2 AND x.txid < (SELECT xmax FROM bound)
          AND NOT EXISTS (SELECT 1 FROM marks m WHERE NOT pg_visible_in_snapshot(x.txid, m.snapshot))
       RETURNING 1)
     SELECT (SELECT count(*) FROM deltas)::text AS n, (SELECT count(*) FROM truncs) AS t`,
    [table.schema, table.name],
  );
  return Number(r.rows[0]?.n ?? 0);
}
