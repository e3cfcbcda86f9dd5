/**
 * Installs and removes capture in a source database: the library schema (by migrations),
 * one delta table per table, and the capture triggers. Idempotent: what exists is kept.
 *
 * Capture records keys, not rows. Statement-level AFTER triggers with transition tables write
 * one INSERT ... SELECT per statement; the delta row carries the key columns in their own
 * types, the writing transaction id (xid8), the capture time, the sync that applied the change
 * (NULL for an application's write) and the database where it was first written.
 */
import createDebug from 'debug';
import type pg from 'pg';
import { PgferryError } from '../errors.js';
import { relationExists, type TableInfo } from '../catalog/tables.js';
import { displayName, ident, identList, keyJoin, literal, qualified } from '../sql/ident.js';
import { APPLIED_BY_SETTING, ORIGIN_SETTING, TRIGGER_SUFFIXES, captureFunctionName, deltaTableName, triggerName } from '../sql/names.js';
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

/** DDL that captures one table (for review with `installSql()`, and for install). */
export function captureSql(schema: string, t: TableInfo): string[] {
  const s = ident(schema);
  const delta = `${s}.${ident(deltaTableName(t))}`;
  const fn = `${s}.${ident(captureFunctionName(t))}`;
  const keyCols = t.key.map((k) => {
    const col = t.columns.find((c) => c.name === k)!;
    return `${ident(k)} ${col.type} NOT NULL`;
  });
  const keys = identList(t.key);
  const keyMatch = keyJoin(t.key, 'n', 'o');
  const meta = `pgferry_xid, pgferry_at, pgferry_by, pgferry_origin`;
  return [
    `CREATE TABLE ${delta} (
  ${keyCols.join(',\n  ')},
  txid xid8 NOT NULL,
  changed_at timestamptz NOT NULL,
  applied_by text,
  origin text
)`,
    // SECURITY DEFINER so writers need no rights on the delta table. No SET search_path
    // clause (it costs a settings save and restore on every call): every name below is
    // schema-qualified, and pg_catalog is searched before anything else.
    `CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $pgferry$
DECLARE
  pgferry_xid xid8 := pg_catalog.pg_current_xact_id();
  pgferry_at timestamptz := pg_catalog.clock_timestamp();
  pgferry_by text := NULLIF(pg_catalog.current_setting('${APPLIED_BY_SETTING}', true), '');
  pgferry_origin text := NULLIF(pg_catalog.current_setting('${ORIGIN_SETTING}', true), '');
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO ${delta} (${keys}, txid, changed_at, applied_by, origin) SELECT ${keys}, ${meta} FROM new_rows;
  ELSIF TG_OP = 'UPDATE' THEN
    -- New keys, plus old keys that an UPDATE changed (the row moved away from them).
    INSERT INTO ${delta} (${keys}, txid, changed_at, applied_by, origin)
      SELECT ${keys}, ${meta} FROM new_rows
      UNION ALL
      SELECT ${identList(t.key, 'o')}, ${meta} FROM old_rows o WHERE NOT EXISTS (SELECT 1 FROM new_rows n WHERE ${keyMatch});
  ELSE
    INSERT INTO ${delta} (${keys}, txid, changed_at, applied_by, origin) SELECT ${keys}, ${meta} FROM old_rows;
  END IF;
  PERFORM pg_catalog.pg_notify(${literal(schema)}, ${literal(displayName(t))});
  RETURN NULL;
END
$pgferry$`,
    `CREATE TRIGGER ${ident(triggerName(schema, '_ins'))} AFTER INSERT ON ${qualified(t)} REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${fn}()`,
    `CREATE TRIGGER ${ident(triggerName(schema, '_upd'))} AFTER UPDATE ON ${qualified(t)} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${fn}()`,
    `CREATE TRIGGER ${ident(triggerName(schema, '_del'))} AFTER DELETE ON ${qualified(t)} REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ${fn}()`,
    `CREATE TRIGGER ${ident(triggerName(schema, '_trunc'))} AFTER TRUNCATE ON ${qualified(t)} FOR EACH STATEMENT EXECUTE FUNCTION ${s}.capture_truncate(${literal(schema)})`,
  ];
}

/**
 * Captures `tables` for `sync` in one database. Call inside a transaction. Tables already
 * captured with the same key are kept as they are (their pending deltas too).
 */
export async function installCapture(c: Queryable, schema: string, database: string, sync: string, tables: TableInfo[]): Promise<void> {
  await migrate(c, schema, database);
  const s = ident(schema);
  for (const t of tables) {
    if (t.kind !== 'table') continue;
    const existing = await c.query<{ key_columns: string[] }>(
      `SELECT key_columns FROM ${s}.captured WHERE table_schema = $1 AND table_name = $2`,
      [t.schema, t.name],
    );
    const have = existing.rows[0];
    if (have && have.key_columns.join('\0') !== t.key.join('\0')) {
      throw new PgferryError(
        'SCHEMA_MISMATCH',
        `Table ${displayName(t)} on database "${database}" is captured with key (${have.key_columns.join(', ')}) but its key is now (${t.key.join(', ')}). Uninstall and install again.`,
        { database, table: displayName(t) },
      );
    }
    if (!have) {
      debug('%s: capturing %s', database, displayName(t));
      for (const stmt of captureSql(schema, t)) await c.query(stmt);
      await c.query(
        `INSERT INTO ${s}.captured (table_schema, table_name, delta_table, key_columns) VALUES ($1, $2, $3, $4)`,
        [t.schema, t.name, deltaTableName(t), t.key],
      );
    }
    await c.query(
      `INSERT INTO ${s}.sync_tables (sync, table_schema, table_name) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
      [sync, t.schema, t.name],
    );
  }
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
