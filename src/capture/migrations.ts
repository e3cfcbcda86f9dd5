/**
 * The library schema, as numbered migrations. Each runs once per database, in order, in the
 * install transaction, under an advisory lock; the schema's `version` table records the last
 * one applied. A database whose schema is newer than this release knows is refused.
 */
import { ident } from '../sql/ident.js';

export interface Migration {
  version: number;
  description: string;
  sql(schema: string): string;
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    description: 'registry of captured tables, syncs and their watermarks',
    sql: (schema) => {
      const s = ident(schema);
      return `
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
);`;
    },
  },
];

export const LATEST_VERSION = migrations[migrations.length - 1]!.version;
