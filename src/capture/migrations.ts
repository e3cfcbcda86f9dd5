/**
 * The library schema, as numbered migrations. Each runs once per database, in order, in the
 * install transaction, under an advisory lock; the schema's `version` table records the last
 * one applied. A database whose schema is newer than this release knows is refused.
 */
import { ident, literal } from '../sql/ident.js';

export interface Migration {
  version: number;
  description: string;
  sql(schema: string): string;
}

/** A migration whose SQL is built from the quoted library schema `s` (and its plain name). */
function migration(version: number, description: string, body: (s: string, schema: string) => string): Migration {
  return { version, description, sql: (schema) => body(ident(schema), schema) };
}

export const migrations: readonly Migration[] = [
  migration(1, 'registry of captured tables, syncs and their watermarks', (s, schema) => `
CREATE TABLE ${s}.version (
  version integer NOT NULL,
  upgraded_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO ${s}.version (version) VALUES (0);

-- One row per captured table: where its deltas go and which columns are its key.
CREATE TABLE ${s}.captured (
  table_schema text NOT NULL,
  table_name text NOT NULL,
  delta_table text NOT NULL UNIQUE,
  key_columns text[] NOT NULL,
  installed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (table_schema, table_name)
);

-- Which sync reads which captured table (a table stays captured while any sync lists it).
CREATE TABLE ${s}.sync_tables (
  sync text NOT NULL,
  table_schema text NOT NULL,
  table_name text NOT NULL,
  PRIMARY KEY (sync, table_schema, table_name),
  FOREIGN KEY (table_schema, table_name) REFERENCES ${s}.captured ON DELETE CASCADE
);

-- Per sync: the snapshot of this database up to which its changes were delivered.
CREATE TABLE ${s}.watermark (
  sync text PRIMARY KEY,
  snapshot pg_snapshot NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);`),
  migration(2, 'TRUNCATE capture', (s, schema) => `
-- One row per TRUNCATE of a captured table (its deltas cannot say "every key").
CREATE TABLE ${s}.truncates (
  table_schema text NOT NULL,
  table_name text NOT NULL,
  txid xid8 NOT NULL,
  changed_at timestamptz NOT NULL,
  applied_by text,
  origin text
);
CREATE INDEX ON ${s}.truncates (txid);

CREATE FUNCTION ${s}.capture_truncate() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $pgferry$
BEGIN
  INSERT INTO ${s}.truncates (table_schema, table_name, txid, changed_at, applied_by, origin)
  VALUES (TG_TABLE_SCHEMA, TG_TABLE_NAME, pg_current_xact_id(), clock_timestamp(),
          nullif(current_setting('pgferry.applied_by', true), ''), nullif(current_setting('pgferry.origin', true), ''));
  PERFORM pg_notify(TG_ARGV[0], TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME);
  RETURN NULL;
END
$pgferry$;

-- Tables captured by version 1 get their TRUNCATE trigger now.
DO $do$
DECLARE r record;
BEGIN
  FOR r IN SELECT table_schema, table_name FROM ${s}.captured LOOP
    EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %I.%I FOR EACH STATEMENT EXECUTE FUNCTION %I.capture_truncate(%L)',
                   ${literal(schema + '_capture_trunc')}, r.table_schema, r.table_name, ${literal(schema)}, ${literal(schema)});
  END LOOP;
END
$do$;`),
  migration(3, 'fences: the newest run that wrote to this database, per sync', (s) => `
-- Per sync: the generation of the newest run whose writes committed here. A run whose
-- generation is older (it lost its lock and a newer run went ahead) cannot commit. A row
-- also means the sync has delivered here before (its one-time copy is done). The origin
-- names the server and database that numbered the generations: numbers of another origin
-- (the first source moved to a new server) cannot be compared, and the newer origin takes over.
CREATE TABLE ${s}.fences (
  sync text PRIMARY KEY,
  generation bigint NOT NULL,
  origin text,
  updated_at timestamptz NOT NULL DEFAULT now()
);`),
  migration(4, 'capture owned by table owners; key types and capture versions; watermarks know their server', (s, schema) => `
-- Which version of the capture function and triggers each table has (see capture/ddl.ts),
-- and the key column types its delta table was made for.
ALTER TABLE ${s}.captured ADD COLUMN capture_version integer NOT NULL DEFAULT 1;
ALTER TABLE ${s}.captured ADD COLUMN key_types text[];

-- The server (pg_control_system().system_identifier) whose transaction ids a watermark
-- counts: a watermark restored onto another server is not trusted.
ALTER TABLE ${s}.watermark ADD COLUMN system_id bigint;

-- Capture functions run as the owners of their tables; each may record TRUNCATEs of the
-- tables its role owns, and only those.
ALTER TABLE ${s}.truncates ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_tables ON ${s}.truncates FOR INSERT WITH CHECK (
  pg_catalog.pg_has_role(
    (SELECT c.relowner FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname OPERATOR(pg_catalog.=) table_schema AND c.relname OPERATOR(pg_catalog.=) table_name),
    'USAGE'));`),
  migration(5, 'capture shape per table, and the shape each sync asked for', (s) => `
-- How each table's changes are captured (capture/ddl.ts): 'row' or 'statement'. Tables
-- captured before were captured per statement.
ALTER TABLE ${s}.captured ADD COLUMN capture_mode text NOT NULL DEFAULT 'statement' CHECK (capture_mode IN ('row', 'statement'));
-- The shape each sync's install() asked for (NULL: installed before syncs chose one).
ALTER TABLE ${s}.sync_tables ADD COLUMN capture text CHECK (capture IN ('row', 'statement'));`),
];

export const LATEST_VERSION = migrations[migrations.length - 1]!.version;

/**
 * The oldest library schema a run works with (older ones need install() first). Migration 5
 * records each table's capture shape, which only install() reads: a run keeps working on a
 * database whose install() has not been repeated since the upgrade.
 */
export const RUN_SCHEMA_VERSION = 4;
