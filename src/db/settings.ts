/**
 * Settings every pgferry transaction pins, instead of trusting the role's or the database's
 * defaults: how names resolve and how values print (keys and rows are compared and copied by
 * their text). pg_catalog comes first, so a built-in with the exact argument types always wins;
 * where pgferry's SQL calls an operator or function whose argument types another schema could
 * match better (numeric * integer, polymorphic functions like json_agg), it names it with
 * pg_catalog. public stays on the path because triggers on receiving tables and onException
 * hooks run in these transactions and may name their tables without a schema.
 */
import { literal } from '../sql/ident.js';

export const PINNED_SETTINGS: Readonly<Record<string, string>> = {
  search_path: 'pg_catalog, "$user", public',
  standard_conforming_strings: 'on',
  TimeZone: 'UTC',
  DateStyle: 'ISO, YMD',
  IntervalStyle: 'postgres',
  extra_float_digits: '3',
  bytea_output: 'hex',
};

/** `SET LOCAL` (inside a transaction) or `SET` (for a session) of every pinned setting. */
export function pinSql(scope: 'local' | 'session'): string {
  const set = scope === 'local' ? 'SET LOCAL' : 'SET';
  return Object.entries(PINNED_SETTINGS)
    .map(([k, v]) => `${set} ${k} = ${k === 'search_path' ? v : literal(v)};`)
    .join(' ');
}
