/**
 * Installs and removes capture in a source database: the library schema (by migrations),
 * one delta table per table, and the capture triggers (their DDL is in ddl.ts). Idempotent:
 * what exists is kept, and brought up to date.
 *
 * A delta row carries the key columns in their own types, the writing transaction id (xid8),
 * the capture time, the sync that applied the change (NULL for an application's write) and the
 * database where it was first written.
 */
import createDebug from 'debug';
import type pg from 'pg';
import { PgferryError } from '../errors.js';
import { readTable, relationExists, type TableInfo } from '../catalog/tables.js';
import { displayName, ident, qualified } from '../sql/ident.js';
import { TRIGGER_SUFFIXES, captureFunctionName, deltaTableName, triggerName } from '../sql/names.js';
import { CAPTURE_VERSION, captureFunctionSql, captureSql, keyColumnType, keyMovedError, ownershipSql, triggersSql, type CaptureMode } from './ddl.js';
import { LATEST_VERSION, migrations } from './migrations.js';

const debug = createDebug('pgferry:install');

type Queryable = Pick<pg.ClientBase, 'query'>;

/** Lock that serializes installs/upgrades of one library schema in one database. */
export async function lockSchema(c: Queryable, schema: string): Promise<void> {
  await c.query(`SELECT pg_advisory_xact_lock(hashtext('pgferry:' || $1))`, [schema]);
}

/** Installed version of the library schema, or null. */
export async function installedVersion(c: Queryable, schema: string): Promise<number | null> {
  if (!(await relationExists(c, { schema, name: 'version' }))) return null;
  const v = await c.query<{ version: number }>(`SELECT max(version) AS version FROM ${ident(schema)}.version`);
  return v.rows[0]?.version ?? 0;
}

/** Brings the library schema to the latest version. Call inside a transaction. */
export async function migrate(c: Queryable, schema: string, database: string): Promise<void> {
  await lockSchema(c, schema);
  await c.query(`CREATE SCHEMA IF NOT EXISTS ${ident(schema)}`);
  const current = (await installedVersion(c, schema)) ?? 0;
  if (current > LATEST_VERSION) {
    throw new PgferryError(
      'SCHEMA_TOO_NEW',
      `Database "${database}" has pgferry schema "${schema}" version ${current}, newer than this release knows (${LATEST_VERSION}). Upgrade pgferry.`,
      { database },
    );
  }
  for (const m of migrations) {
    if (m.version <= current) continue;
    debug('%s: migration %d (%s)', database, m.version, m.description);
    await c.query(m.sql(schema));
    await c.query(`UPDATE ${ident(schema)}.version SET version = $1, upgraded_at = now()`, [m.version]);
  }
}

/**
 * Captures `tables` for `sync` in one database. Call inside a transaction. Tables already
 * captured with the same key are kept (their pending deltas too); their capture is brought
 * up to date: the current function and triggers, and key columns of the delta table widened
 * to the table's key types.
 */
export async function installCapture(
  c: Queryable,
  schema: string,
  database: string,
  sync: string,
  tables: TableInfo[],
  mode: CaptureMode,
): Promise<void> {
  await migrate(c, schema, database);
  const s = ident(schema);
  const me = (await c.query<{ u: string }>(`SELECT current_user::text AS u`)).rows[0]!.u;
  const captured = tables.filter((t) => t.kind === 'table');
  const existing = new Map<TableInfo, Captured>();
  for (const t of captured) {
    const have = (await c.query<Captured>(
      `SELECT key_columns, capture_version, key_types, capture_mode,
              (SELECT pg_catalog.array_agg(st.sync ORDER BY st.sync) FROM ${s}.sync_tables st
                WHERE st.table_schema = c.table_schema AND st.table_name = c.table_name AND st.sync <> $3
                  AND st.capture IS NOT NULL AND st.capture <> $4) AS others
         FROM ${s}.captured c WHERE table_schema = $1 AND table_name = $2`,
      [t.schema, t.name, sync, mode],
    )).rows[0];
    if (!have) continue;
    if (have.key_columns.join('\0') !== t.key.join('\0')) throw keyMovedError(t, have.key_columns, database);
    // Another sync that chose the other shape for this table (syncs installed before they could
    // choose leave it to whoever installs next).
    if (have.others?.length) throw captureDisagrees(displayName(t), have.others[0]!, mode === 'row' ? 'statement' : 'row', sync, mode, database);
    existing.set(t, have);
  }
  for (const t of captured) {
    const have = existing.get(t);
    const keyTypes = t.key.map((k) => keyColumnType(t, k));
    if (!have) {
      debug('%s: capturing %s (%s-level)', database, displayName(t), mode);
      for (const stmt of captureSql(schema, t, mode)) await c.query(stmt);
      await c.query(
        `INSERT INTO ${s}.captured (table_schema, table_name, delta_table, key_columns, capture_version, key_types, capture_mode) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        [t.schema, t.name, deltaTableName(t), t.key, CAPTURE_VERSION, keyTypes, mode],
      );
    } else {
      if (have.capture_version < CAPTURE_VERSION || have.capture_mode !== mode) await replaceCapture(c, schema, database, t, mode);
      if ((have.key_types ?? []).join('\0') !== keyTypes.join('\0')) await alignDeltaKeys(c, schema, database, t);
      await c.query(`UPDATE ${s}.captured SET capture_version = $3, key_types = $4, capture_mode = $5 WHERE table_schema = $1 AND table_name = $2`, [
        t.schema,
        t.name,
        CAPTURE_VERSION,
        keyTypes,
        mode,
      ]);
    }
    await handOver(c, schema, database, t, me);
    await c.query(
      `INSERT INTO ${s}.sync_tables (sync, table_schema, table_name, capture) VALUES ($1, $2, $3, $4)
       ON CONFLICT (sync, table_schema, table_name) DO UPDATE SET capture = EXCLUDED.capture`,
      [sync, t.schema, t.name, mode],
    );
  }
  // 0.1's TRUNCATE trigger function, shared by every table and owned by the installer, goes
  // once no table uses it.
  const old = await c.query(`SELECT 1 FROM ${s}.captured WHERE capture_version < 2 LIMIT 1`);
  if (!old.rowCount) await c.query(`DROP FUNCTION IF EXISTS ${s}.capture_truncate()`);
}

/** Two syncs want `table` captured in different shapes (CONFIG_INVALID). */
export function captureDisagrees(table: string, other: string, otherMode: CaptureMode, sync: string, mode: CaptureMode, database?: string): PgferryError {
  return new PgferryError(
    'CONFIG_INVALID',
    `Table ${table}${database ? ` on database "${database}"` : ''} is captured with capture '${otherMode}' for sync "${other}"; sync "${sync}" asks for '${mode}'. Give every sync of the table the same capture.`,
    { ...(database && { database }), sync, table, issues: [{ path: 'capture', message: `sync "${other}" captures ${table} with '${otherMode}'` }] },
  );
}

/** A captured table's registry row (and the other syncs that chose the other shape for it). */
interface Captured {
  key_columns: string[];
  capture_version: number;
  key_types: string[] | null;
  capture_mode: CaptureMode;
  others: string[] | null;
}

/**
 * Replaces an older capture function and its triggers with the current ones, in `mode`. The
 * delta table and its pending deltas stay; the install transaction holds the table's lock,
 * so no write falls between the old triggers and the new.
 */
async function replaceCapture(c: Queryable, schema: string, database: string, t: TableInfo, mode: CaptureMode): Promise<void> {
  debug('%s: capture of %s becomes version %d, %s-level', database, displayName(t), CAPTURE_VERSION, mode);
  await c.query(captureFunctionSql(schema, t, mode));
  for (const suffix of TRIGGER_SUFFIXES) await c.query(`DROP TRIGGER IF EXISTS ${ident(triggerName(schema, suffix))} ON ${qualified(t)}`);
  for (const stmt of triggersSql(schema, t, mode)) await c.query(stmt);
}

/** Gives the capture function to the table's owner when it is not the installer (invariant 10). */
async function handOver(c: Queryable, schema: string, database: string, t: TableInfo, installer: string): Promise<void> {
  if (t.owner === installer) return;
  if (!t.ownedByMe) {
    debug('%s: %s belongs to %s, of which %s is not a member: its capture function stays with the installer', database, displayName(t), t.owner, installer);
    return;
  }
  const r = await c.query<{ create: boolean }>(`SELECT pg_catalog.has_schema_privilege($1, $2, 'CREATE') AS create`, [t.owner, schema]);
  for (const stmt of ownershipSql(schema, t, r.rows[0]!.create)) await c.query(stmt);
}

/**
 * Makes the delta table's key columns the table's key types again (after e.g. an int key was
 * widened to bigint), so that the capture of a new value cannot fail. Pending deltas are kept.
 */
async function alignDeltaKeys(c: Queryable, schema: string, database: string, t: TableInfo): Promise<void> {
  const delta = await readTable(c, { schema, name: deltaTableName(t) });
  if (!delta) return;
  const changes = t.key.filter((k) => {
    const want = t.columns.find((x) => x.name === k)!;
    const have = delta.columns.find((x) => x.name === k);
    return !have || have.type !== want.type || have.collation !== want.collation;
  });
  if (changes.length === 0) return;
  debug('%s: delta table of %s gets key types %s', database, displayName(t), changes.map((k) => keyColumnType(t, k)).join(', '));
  await c.query(
    `ALTER TABLE ${ident(schema)}.${ident(deltaTableName(t))} ` +
      changes.map((k) => `ALTER COLUMN ${ident(k)} TYPE ${keyColumnType(t, k)} USING ${ident(k)}::${t.columns.find((x) => x.name === k)!.type}`).join(', '),
  );
}

async function dropCapture(c: Queryable, schema: string, t: { table_schema: string; table_name: string; delta_table: string }): Promise<void> {
  const q = { schema: t.table_schema, name: t.table_name };
  if (await relationExists(c, q)) {
    for (const suffix of TRIGGER_SUFFIXES) {
      await c.query(`DROP TRIGGER IF EXISTS ${ident(triggerName(schema, suffix))} ON ${qualified(q)}`);
    }
  }
  await c.query(`DROP FUNCTION IF EXISTS ${ident(schema)}.${ident(captureFunctionName(q))}()`);
  await c.query(`DROP TABLE IF EXISTS ${ident(schema)}.${ident(t.delta_table)}`);
  await c.query(`DELETE FROM ${ident(schema)}.captured WHERE table_schema = $1 AND table_name = $2`, [q.schema, q.name]);
}

/**
 * Removes capture for `sync` (tables no other sync reads lose their triggers and deltas) and
 * its fence, or everything when `sync` is undefined; drops the library schema once nothing
 * is captured and no sync has a fence here.
 */
export async function uninstallCapture(c: Queryable, schema: string, sync?: string): Promise<void> {
  const version = await installedVersion(c, schema);
  if (version === null) return;
  await lockSchema(c, schema);
  const s = ident(schema);
  const hasFences = version >= 3;
  if (sync !== undefined) {
    await c.query(`DELETE FROM ${s}.sync_tables WHERE sync = $1`, [sync]);
    await c.query(`DELETE FROM ${s}.watermark WHERE sync = $1`, [sync]);
    if (hasFences) await c.query(`DELETE FROM ${s}.fences WHERE sync = $1`, [sync]);
  }
  const orphans = await c.query<{ table_schema: string; table_name: string; delta_table: string }>(
    sync === undefined
      ? `SELECT table_schema, table_name, delta_table FROM ${s}.captured`
      : `SELECT table_schema, table_name, delta_table FROM ${s}.captured c
          WHERE NOT EXISTS (SELECT 1 FROM ${s}.sync_tables st WHERE st.table_schema = c.table_schema AND st.table_name = c.table_name)`,
  );
  for (const t of orphans.rows) await dropCapture(c, schema, t);
  const left = await c.query(
    `SELECT 1 FROM ${s}.captured ${hasFences && sync !== undefined ? `UNION ALL SELECT 1 FROM ${s}.fences` : ''} LIMIT 1`,
  );
  if (!left.rowCount) await c.query(`DROP SCHEMA ${s} CASCADE`);
}
