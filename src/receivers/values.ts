/**
 * How PostgreSQL values become values of another kind of database (the table in README,
 * "Targets that are not PostgreSQL"). Rows arrive in PostgreSQL's text form (the run's pinned
 * settings: UTC, ISO dates, shortest exact floats, hex bytea), except the types `batchTypes`
 * parses: smallint, integer, oid, real, double precision (numbers), boolean and bytea
 * (Buffers). Values a transform returned may be any JavaScript value and are mapped too.
 */
import pg from 'pg';
import type { ReceiverColumn } from './receiver.js';

export const OID = {
  bool: 16,
  bytea: 17,
  int8: 20,
  int2: 21,
  int4: 23,
  oid: 26,
  json: 114,
  float4: 700,
  float8: 701,
  date: 1082,
  timestamp: 1114,
  timestamptz: 1184,
  numeric: 1700,
  jsonb: 3802,
} as const;

const PARSED = new Set<number>([OID.bool, OID.bytea, OID.int2, OID.int4, OID.oid, OID.float4, OID.float8]);

/** Rows for SQLite and MySQL: numbers, booleans and bytea parsed; everything else as text. */
export const batchTypes: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    PARSED.has(oid) ? pg.types.getTypeParser(oid, format ?? 'text') : (value: string) => value) as pg.CustomTypesConfig['getTypeParser'],
};

/** Rows for Redis: every value in PostgreSQL's text form. */
export const textTypes: pg.CustomTypesConfig = {
  getTypeParser: (() => (value: string) => value) as unknown as pg.CustomTypesConfig['getTypeParser'],
};

const TIMESTAMP = /^(\d{4,}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?)$/;
const TIMESTAMPTZ_UTC = /^(\d{4,}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?)\+00$/;

/** A JavaScript array as a PostgreSQL array literal (for arrays a transform returned). */
export function arrayText(a: readonly unknown[]): string {
  const item = (v: unknown): string => {
    if (v === null || v === undefined) return 'NULL';
    if (Array.isArray(v)) return arrayText(v);
    const s = pgText(v);
    return s === '' || /[{},"\\\s]|^NULL$/i.test(s) ? `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"` : s;
  };
  return `{${a.map(item).join(',')}}`;
}

/** Any value in PostgreSQL's text form (null stays null). */
export function pgText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean') return v ? 't' : 'f';
  if (typeof v === 'number' || typeof v === 'bigint') return String(v);
  if (Buffer.isBuffer(v)) return `\\x${v.toString('hex')}`;
  if (v instanceof Date) return v.toISOString().replace('T', ' ').replace('Z', '+00');
  if (Array.isArray(v)) return arrayText(v);
  return JSON.stringify(v);
}

/** Text of a key column, as Redis hash names and `:keys` members spell it. */
export function keyText(v: unknown): string {
  return pgText(v);
}

/**
 * SQLite: integers (bigint exact, as BigInt), reals, text; bytea as a blob; booleans 0/1;
 * timestamps as ISO-8601 text (`2024-05-01T12:00:00.123456Z` with a time zone, without `Z`
 * without one); numeric, json, arrays and every other type as PostgreSQL text.
 */
export function toSqlite(v: unknown, c: ReceiverColumn): unknown {
  if (v === null || v === undefined) return null;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'number' || typeof v === 'bigint' || Buffer.isBuffer(v)) return v;
  if (v instanceof Date) return v.toISOString();
  if (typeof v !== 'string') return pgText(v);
  switch (c.typeOid) {
    case OID.int8:
      return /^-?\d+$/.test(v) ? BigInt(v) : v;
    case OID.bool:
      return boolAsInt(v);
    case OID.bytea:
      return byteaAsBuffer(v);
    case OID.timestamptz:
      return v.replace(TIMESTAMPTZ_UTC, '$1T$2Z');
    case OID.timestamp:
      return v.replace(TIMESTAMP, '$1T$2');
    default:
      return v;
  }
}

/**
 * MySQL/MariaDB: integers and bigint (exact, sent as text), DECIMAL from numeric text (exact),
 * DOUBLE/FLOAT, 1/0 for booleans (TINYINT(1)), BLOB for bytea, DATETIME(6)/TIMESTAMP(6) in UTC
 * for timestamptz (the session's time zone is UTC), JSON from json text; arrays and other
 * types as PostgreSQL text.
 */
export function toMysql(v: unknown, c: ReceiverColumn): unknown {
  if (v === null || v === undefined) return null;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'number' || Buffer.isBuffer(v)) return v;
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Date) return v.toISOString().replace('T', ' ').replace('Z', '');
  if (typeof v !== 'string') return pgText(v);
  switch (c.typeOid) {
    case OID.bool:
      return boolAsInt(v);
    case OID.bytea:
      return byteaAsBuffer(v);
    case OID.timestamptz:
      return v.replace(TIMESTAMPTZ_UTC, '$1 $2');
    default:
      return v;
  }
}

/** Redis: every value in PostgreSQL's text form (bytea as `\x` hex, booleans `t`/`f`). */
export function toRedis(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  return pgText(v);
}

/** PostgreSQL's boolean text as 1 or 0 (SQLite and MySQL have no boolean). */
function boolAsInt(v: string): number | string {
  return v === 't' || v === 'true' ? 1 : v === 'f' || v === 'false' ? 0 : v;
}

/** PostgreSQL's bytea hex text (bytea_output is pinned to hex) as its bytes. */
function byteaAsBuffer(v: string): Buffer | string {
  return v.startsWith('\\x') ? Buffer.from(v.slice(2), 'hex') : v;
}
