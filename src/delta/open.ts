/**
 * Opening a source's read: the REPEATABLE READ transaction whose snapshot the run reads at,
 * and every check that the sync's capture there is what this release reads: the library
 * schema's version, each table captured, by the current capture, with the table's key types.
 *
 * The previous watermark is trusted only if it comes from this server's transaction-id
 * history: a pgferry schema restored onto another server (a dump, a logical migration) brings
 * a watermark whose ids mean nothing here, so the sync starts over: every delta present is
 * read, and deltas whose ids are ahead of this server are renumbered into this run's
 * transaction (read again once more, never lost).
 */
import createDebug from 'debug';
import { stampValues, stampsSql } from '../catalog/cache.js';
import type { TableInfo } from '../catalog/tables.js';
import { MIN_CAPTURE_VERSION, keyColumnType, keyMovedError } from '../capture/ddl.js';
import { RUN_SCHEMA_VERSION } from '../capture/migrations.js';
import type { Session } from '../db/session.js';
import { PgferryError } from '../errors.js';
import { displayName, escapeLiteral, ident, type QualifiedName } from '../sql/ident.js';
import { deltaTableName } from '../sql/names.js';
import type { SourceRead } from './reader.js';

const debug = createDebug('pgferry:delta');

interface Registry {
  table_schema: string | null;
  table_name: string | null;
  capture_version: number | null;
  key_columns: string[] | null;
  key_types: string[] | null;
  previous: string | null;
  system_id: string | null;
  here: string;
  future: boolean;
  version: number;
}

/** What a source's read transaction learns in its first round trip (see probeSql). */
export interface Probe {
  snapshot: string;
  installed: boolean;
  /** With `generation`: this transaction's id, and the server and database that numbered it. */
  g?: string;
  origin?: string;
}

/**
 * The first statement of a source's read transaction, sent with its BEGIN: the snapshot the
 * run reads at, whether the library schema is there, and, with `generation`, the run's
 * generation (see sync/read.ts). Parsed before BEGIN's SET LOCALs run: its one string is an
 * escape string.
 */
export function probeSql(schema: string, generation: boolean): string {
  return `SELECT pg_catalog.pg_current_snapshot()::text AS snapshot,
                 pg_catalog.to_regclass(${escapeLiteral(`${ident(schema)}.sync_tables`)}) IS NOT NULL AS installed${generation ? `, ${GENERATION_COLUMNS}` : ''}`;
}

/** The run's generation: a transaction id of this server, and which server and database numbered it. */
export const GENERATION_COLUMNS = `pg_catalog.pg_current_xact_id()::text AS g,
            (SELECT system_identifier FROM pg_catalog.pg_control_system())::text || '/' ||
            (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())::text AS origin`;

/**
 * Opens the read transaction on a source (unless `probe` says it was opened already, with
 * probeSql) and checks that the sync is installed there.
 */
export async function openSource(
  session: Session,
  schema: string,
  sync: string,
  tables: TableInfo[],
  options: { probe?: Probe; generation?: boolean } = {},
): Promise<SourceRead> {
  const probe = options.probe ?? (await session.begin<Probe>('repeatable read', {}, probeSql(schema, options.generation ?? false)))[0]!;
  const read = openedRead(session, probe);
  // Nothing captured is needed (full copies only): the snapshot alone matters.
  if (tables.length === 0) return read;
  if (!probe.installed) throw notInstalled(session, schema, sync, `the pgferry schema "${schema}" is not there`);
  const r = await session.prepared<Registry>(registrySql(schema, false), [sync, read.snapshot]);
  return checkRegistry(read, schema, sync, tables, r.rows);
}

/**
 * The first source's read, opened with probeSql: the descriptions of the sync's relations
 * from the catalog cache (`relations`, in order; TABLE_NOT_FOUND for one missing) and, for an
 * incremental sync (`incremental`), the checks of openSource, with the catalog's stamps in the
 * same round trip as the registry.
 */
export async function openFirstSource(
  session: Session,
  schema: string,
  sync: string,
  probe: Probe,
  relations: readonly QualifiedName[],
  incremental: boolean,
): Promise<{ read: SourceRead; infos: TableInfo[] }> {
  const read = openedRead(session, probe);
  const catalog = session.db.catalog;
  if (!incremental || !probe.installed) {
    const infos = await catalog.require(session.client, relations, session.name);
    if (!incremental) return { read, infos };
    throw notInstalled(session, schema, sync, `the pgferry schema "${schema}" is not there`);
  }
  const r = await session.prepared<Registry & { stamps: [number, string][] | null }>(registrySql(schema, true), [sync, read.snapshot, ...stampValues(relations)]);
  const stamps = (r.rows.find((x) => x.stamps !== null)?.stamps ?? []).map(([i, stamp]) => ({ i, stamp }));
  const infos = await catalog.require(session.client, relations, session.name, stamps);
  const tables = infos.filter((t) => t.kind === 'table');
  return { read: await checkRegistry(read, schema, sync, tables, r.rows), infos };
}

function openedRead(session: Session, probe: Probe): SourceRead {
  const generation = probe.g === undefined ? undefined : { value: BigInt(probe.g), origin: probe.origin! };
  return { session, snapshot: probe.snapshot, previous: null, generation };
}

/**
 * What the library schema records for the sync ($1) at the snapshot ($2): its tables and
 * their captures, its watermark, the schema's version; with `stamps`, the catalog stamps of
 * the relations in $3 and $4 too (see catalog/cache.ts), on one row only (a sync of many tables
 * has as many rows). Rows as JSON, so that columns of a newer schema version are read without
 * naming them (an older schema is refused by checkRegistry, not broken by the query).
 */
function registrySql(schema: string, stamps: boolean): string {
  const s = ident(schema);
  return `${stamps ? `WITH stamps AS (${stampsSql('$3', '$4')})\n` : ''}SELECT st.table_schema, st.table_name, (pg_catalog.to_jsonb(cap) ->> 'capture_version')::int AS capture_version, cap.key_columns,
            ARRAY(SELECT pg_catalog.jsonb_array_elements_text(pg_catalog.to_jsonb(cap) -> 'key_types')) AS key_types,
            w.snapshot::text AS previous, pg_catalog.to_jsonb(w) ->> 'system_id' AS system_id,
            (SELECT system_identifier::text FROM pg_catalog.pg_control_system()) AS here,
            coalesce(pg_snapshot_xmax(w.snapshot) > pg_snapshot_xmax($2::pg_snapshot), false) AS future,
            (SELECT max(version) FROM ${s}.version) AS version${stamps ? `,
            CASE WHEN pg_catalog.row_number() OVER () OPERATOR(pg_catalog.=) 1
                 THEN (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(x.i, x.stamp)) FROM stamps x) END AS stamps` : ''}
       FROM (SELECT 1) one
       LEFT JOIN ${s}.sync_tables st ON st.sync = $1
       LEFT JOIN ${s}.captured cap ON cap.table_schema = st.table_schema AND cap.table_name = st.table_name
       LEFT JOIN ${s}.watermark w ON w.sync = $1`;
}

/** The checks of openSource on the registry's rows; the read with its previous watermark. */
async function checkRegistry(read: SourceRead, schema: string, sync: string, tables: TableInfo[], rows: Registry[]): Promise<SourceRead> {
  const { session } = read;
  const first = rows[0]!;
  if (first.version < RUN_SCHEMA_VERSION) {
    throw new PgferryError(
      'NOT_INSTALLED',
      `The pgferry schema "${schema}" on database "${session.name}" is version ${first.version}, older than this release needs (${RUN_SCHEMA_VERSION}). Call install() to upgrade it (pending changes are kept).`,
      { sync, database: session.name },
    );
  }
  const registered = new Map(rows.filter((x) => x.table_schema !== null).map((x) => [displayName({ schema: x.table_schema!, name: x.table_name! }), x]));
  const missing = tables.filter((t) => !registered.has(displayName(t)));
  if (missing.length > 0) throw notInstalled(session, schema, sync, `${missing.map((t) => displayName(t)).join(', ')} not captured`);
  for (const t of tables) checkCapture(session, sync, t, registered.get(displayName(t))!);

  let previous = first.previous;
  if (previous !== null && (first.future || (first.system_id !== null && first.system_id !== first.here))) {
    debug('%s: watermark of %s is from another server (%s); starting over', session.name, sync, first.future ? 'ahead of this one' : `system ${first.system_id}`);
    await renumberFutureDeltas(session, schema, tables);
    previous = null;
  }
  debug('%s: reading at %s (previous %s)', session.name, read.snapshot, previous);
  return { ...read, previous };
}

function notInstalled(session: Session, schema: string, sync: string, what: string): PgferryError {
  return new PgferryError('NOT_INSTALLED', `Sync "${sync}" is not installed on source database "${session.name}" (${what}). Call install('${sync}') first.`, {
    sync,
    database: session.name,
  });
}

/** The table is captured by the current capture, for its current key types. */
function checkCapture(session: Session, sync: string, t: TableInfo, reg: Registry): void {
  const table = displayName(t);
  if ((reg.capture_version ?? 1) < MIN_CAPTURE_VERSION) {
    throw new PgferryError(
      'NOT_INSTALLED',
      `The capture of ${table} on database "${session.name}" was installed by an older pgferry. Call install('${sync}') to bring it up to date (pending changes are kept).`,
      { sync, database: session.name, table },
    );
  }
  if (t.key.length > 0 && reg.key_columns && reg.key_columns.join('\0') !== t.key.join('\0')) throw keyMovedError(t, reg.key_columns, session.name);
  const want = t.key.map((k) => keyColumnType(t, k));
  const have = reg.key_types ?? [];
  const i = want.findIndex((x, n) => x !== have[n]);
  if (i >= 0) {
    throw new PgferryError(
      'SCHEMA_MISMATCH',
      `The key column "${t.key[i]}" of ${table} on database "${session.name}" is now ${want[i]}, but pgferry captures it as ${have[i] ?? 'something else'}. Call install('${sync}') to bring the delta table in line (pending changes are kept); until then, values that do not fit the old type cannot be captured.`,
      { sync, database: session.name, table, column: t.key[i] },
    );
  }
}

/** Deltas and TRUNCATE records with ids this server has not reached join this run's transaction. */
async function renumberFutureDeltas(session: Session, schema: string, tables: TableInfo[]): Promise<void> {
  const s = ident(schema);
  for (const t of tables) {
    await session.query(`UPDATE ${s}.${ident(deltaTableName(t))} SET txid = pg_current_xact_id() WHERE txid > pg_current_xact_id()`);
  }
  await session.query(`UPDATE ${s}.truncates SET txid = pg_current_xact_id() WHERE txid > pg_current_xact_id()`);
}
