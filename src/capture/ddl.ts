/**
 * The DDL that captures one table, as pure functions (install runs it; installSql() prints
 * it). Capture records keys, not rows, in the table's delta table, in one of two shapes (the
 * sync's `capture`, chosen by measurement, see BENCHMARKS.md):
 *
 * - `row` (the default): row-level AFTER triggers, one INSERT of the key per changed row.
 *   Cheapest for the single-row statements of OLTP writers: a table with transition tables
 *   costs every statement (TPC-B lost a quarter of its throughput to triggers whose body was
 *   empty), row-level triggers almost nothing.
 * - `statement`: statement-level AFTER triggers with transition tables, one INSERT ... SELECT
 *   per statement: about half the cost of `row` for statements that change many rows.
 *
 * A TRUNCATE is recorded in the library's `truncates` table by a statement-level trigger.
 *
 * The capture function is SECURITY DEFINER (writers need no rights on the delta table), so
 * nothing a writer controls may reach its code (DESIGN.md invariant 10): it names every
 * table, type, function and operator with its schema, compares keys with the key index's own
 * operators (or the types' default equality where that is the same), and is owned by the
 * table's owner (see ownershipSql), not by whoever installs.
 */
import { createHash } from 'node:crypto';
import type { TableInfo } from '../catalog/tables.js';
import { PgferryError } from '../errors.js';
import { displayName, ident, identList, keyJoin, literal, qualified } from '../sql/ident.js';
import { APPLIED_BY_SETTING, ORIGIN_SETTING, captureFunctionName, deltaTableName, triggerName } from '../sql/names.js';

/**
 * Version of the capture objects of one table (function and triggers). Version 1 (0.1)
 * had no pinned search_path and a TRUNCATE trigger on a shared function owned by the installer;
 * version 2 pinned search_path with SET and found moved keys by an anti-join; version 3
 * qualified every name instead and found moved keys by EXCEPT ALL; version 4 added the
 * row-level shape and notifies once per transaction.
 */
export const CAPTURE_VERSION = 4;

/** How a table's changes are captured: see the top of this file. */
export type CaptureMode = 'row' | 'statement';

/**
 * The oldest capture a run accepts: version 2 captures safely (pinned search_path, owned by the
 * table owner); install() brings it to version 3 (moved keys found by EXCEPT, see movedKeys).
 */
export const MIN_CAPTURE_VERSION = 2;

/** A key column as a delta table stores it: the table's type and collation. */
export function keyColumnType(t: TableInfo, name: string): string {
  const col = t.columns.find((c) => c.name === name)!;
  return col.collation ? `${col.type} COLLATE ${col.collation}` : col.type;
}

/** A table whose key moved to other columns after it was captured (its delta table keys the old ones). */
export function keyMovedError(t: TableInfo, capturedKey: readonly string[], database: string): PgferryError {
  return new PgferryError(
    'SCHEMA_MISMATCH',
    `Table ${displayName(t)} on database "${database}" is captured with key (${capturedKey.join(', ')}) but its key is now (${t.key.join(', ')}). Uninstall and install again.`,
    { database, table: displayName(t) },
  );
}

export function deltaTableSql(schema: string, t: TableInfo): string {
  const keyCols = t.key.map((k) => `${ident(k)} ${keyColumnType(t, k)} NOT NULL`);
  return `CREATE TABLE ${ident(schema)}.${ident(deltaTableName(t))} (
  ${keyCols.join(',\n  ')},
  txid xid8 NOT NULL,
  changed_at timestamptz NOT NULL,
  applied_by text,
  origin text
)`;
}

const EQ = 'OPERATOR(pg_catalog.=)';

export function captureFunctionSql(schema: string, t: TableInfo, mode: CaptureMode): string {
  const s = ident(schema);
  const delta = `${s}.${ident(deltaTableName(t))}`;
  const keys = identList(t.key);
  const meta = `pgferry_xid, pgferry_at, pgferry_by, pgferry_origin`;
  const into = `INSERT INTO ${delta} (${keys}, txid, changed_at, applied_by, origin)`;
  // Set in the writing transaction once it notified the listeners of this table's changes.
  const flag = literal(`pgferry.notified_${createHash('sha1').update(`${schema}\0${displayName(t)}`).digest('hex').slice(0, 16)}`);
  const rowKeys = (rec: 'NEW' | 'OLD') => t.key.map((k) => `${rec}.${ident(k)}`).join(', ');
  const changes =
    mode === 'row'
      ? `IF TG_OP ${EQ} 'DELETE' THEN
    ${into} VALUES (${rowKeys('OLD')}, ${meta});
  ELSE
    ${into} VALUES (${rowKeys('NEW')}, ${meta});
    -- An UPDATE that changed the key: the row moved away from the old one.
    IF TG_OP ${EQ} 'UPDATE' AND NOT (${keyJoin(t, 'OLD', 'NEW')}) THEN
      ${into} VALUES (${rowKeys('OLD')}, ${meta});
    END IF;
  END IF;`
      : `IF TG_OP ${EQ} 'INSERT' THEN
    ${into} SELECT ${keys}, ${meta} FROM new_rows;
  ELSIF TG_OP ${EQ} 'UPDATE' THEN
    -- New keys, plus old keys that an UPDATE changed (the row moved away from them).
    ${into}
      SELECT ${keys}, ${meta} FROM new_rows
      UNION ALL
      ${movedKeys(t, meta)};
  ELSE
    ${into} SELECT ${keys}, ${meta} FROM old_rows;
  END IF;`;
  // Every name the body resolves is qualified (tables, types, functions, operators) and the
  // transition tables are found before any relation, so the writer's search_path changes
  // nothing here; pinning it with SET would save and restore settings on every call (a
  // quarter of the function's cost on a single-row statement, see BENCHMARKS.md).
  return `CREATE OR REPLACE FUNCTION ${s}.${ident(captureFunctionName(t))}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $pgferry$
DECLARE
  pgferry_xid pg_catalog.xid8 := pg_catalog.pg_current_xact_id();
  pgferry_at pg_catalog.timestamptz := pg_catalog.clock_timestamp();
  pgferry_by pg_catalog.text := pg_catalog.current_setting(${literal(APPLIED_BY_SETTING)}, true);
  pgferry_origin pg_catalog.text := pg_catalog.current_setting(${literal(ORIGIN_SETTING)}, true);
  pgferry_done pg_catalog.bool;
BEGIN
  IF pgferry_by ${EQ} '' THEN pgferry_by := NULL; END IF;
  IF pgferry_origin ${EQ} '' THEN pgferry_origin := NULL; END IF;
  IF TG_OP ${EQ} 'TRUNCATE' THEN
    INSERT INTO ${s}.truncates (table_schema, table_name, txid, changed_at, applied_by, origin)
    VALUES (${literal(t.schema)}, ${literal(t.name)}, ${meta});
  ELSE
    ${changes.replace(/\n/g, '\n  ')}
  END IF;
  -- Listeners need one notification per transaction and table: later calls skip it (PERFORM
  -- would start the query executor for every statement or row; assignments do not).
  IF pg_catalog.current_setting(${flag}, true) OPERATOR(pg_catalog.=) 'y' THEN
    NULL;
  ELSE
    pgferry_done := pg_catalog.pg_notify(${literal(schema)}, ${literal(displayName(t))}) IS NULL;
    pgferry_done := pg_catalog.set_config(${flag}, 'y', true) IS NULL;
  END IF;
  RETURN NULL;
END
$pgferry$`;
}

/**
 * Old keys an UPDATE moved rows away from. PL/pgSQL keeps the plan of its first call for
 * the session, with that call's transition table sizes: an anti-join planned for one row
 * (a nested loop) would be quadratic for a later bulk UPDATE in the same session. EXCEPT is a
 * set operation, linear whatever the estimate; it compares by the types' default equality,
 * so a key whose index uses another operator class keeps the anti-join on the key's own
 * operators.
 */
function movedKeys(t: TableInfo, meta: string): string {
  if (t.keyOpsDefault) {
    return `SELECT ${identList(t.key, 'm')}, ${meta} FROM (SELECT ${identList(t.key)} FROM old_rows EXCEPT ALL SELECT ${identList(t.key)} FROM new_rows) m`;
  }
  return `SELECT ${identList(t.key, 'o')}, ${meta} FROM old_rows o WHERE NOT EXISTS (SELECT FROM new_rows n WHERE ${keyJoin(t, 'n', 'o')})`;
}

export function triggersSql(schema: string, t: TableInfo, mode: CaptureMode): string[] {
  const fn = `${ident(schema)}.${ident(captureFunctionName(t))}()`;
  const on = qualified(t);
  const rows = (event: string, transition: string) =>
    mode === 'row' ? `AFTER ${event} ON ${on} FOR EACH ROW` : `AFTER ${event} ON ${on} REFERENCING ${transition} FOR EACH STATEMENT`;
  return [
    `CREATE TRIGGER ${ident(triggerName(schema, '_ins'))} ${rows('INSERT', 'NEW TABLE AS new_rows')} EXECUTE FUNCTION ${fn}`,
    `CREATE TRIGGER ${ident(triggerName(schema, '_upd'))} ${rows('UPDATE', 'OLD TABLE AS old_rows NEW TABLE AS new_rows')} EXECUTE FUNCTION ${fn}`,
    `CREATE TRIGGER ${ident(triggerName(schema, '_del'))} ${rows('DELETE', 'OLD TABLE AS old_rows')} EXECUTE FUNCTION ${fn}`,
    `CREATE TRIGGER ${ident(triggerName(schema, '_trunc'))} AFTER TRUNCATE ON ${on} FOR EACH STATEMENT EXECUTE FUNCTION ${fn}`,
  ];
}

/**
 * Gives the capture function to the table's owner, with just the rights it needs: to write
 * the table's delta table and TRUNCATE records (a row policy on `truncates` admits only the
 * owner's own tables). The owner needs CREATE on the library schema to receive a function
 * there; unless it had it (`ownerCanCreate`), it has it only for the hand-over.
 */
export function ownershipSql(schema: string, t: TableInfo, ownerCanCreate: boolean): string[] {
  const s = ident(schema);
  const owner = ident(t.owner);
  return [
    `GRANT USAGE ON SCHEMA ${s} TO ${owner}`,
    ...(ownerCanCreate ? [] : [`GRANT CREATE ON SCHEMA ${s} TO ${owner}`]),
    `ALTER FUNCTION ${s}.${ident(captureFunctionName(t))}() OWNER TO ${owner}`,
    ...(ownerCanCreate ? [] : [`REVOKE CREATE ON SCHEMA ${s} FROM ${owner}`]),
    `GRANT INSERT ON ${s}.${ident(deltaTableName(t))} TO ${owner}`,
    `GRANT INSERT ON ${s}.truncates TO ${owner}`,
  ];
}

/** Everything that captures a new table, in order (for install and for review). */
export function captureSql(schema: string, t: TableInfo, mode: CaptureMode): string[] {
  return [deltaTableSql(schema, t), captureFunctionSql(schema, t, mode), ...triggersSql(schema, t, mode)];
}
