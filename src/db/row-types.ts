/**
 * How rows handed to application code (conflict resolvers, transforms) are parsed: by
 * node-postgres, except types whose parsing loses something, which stay in their text form so
 * that a row written back round-trips exactly.
 */
import pg from 'pg';

/**
 * Types whose node-postgres parsing loses something (dates and times shift with the process
 * time zone and lose microseconds; intervals do not print back; JSON numbers lose their
 * scale and digits past a double), and their arrays: application code gets them in their
 * PostgreSQL text form, which a written-back row writes exactly.
 */
const KEEP_AS_TEXT = new Set([
  1082, 1083, 1114, 1184, 1186, 1266, 114, 3802, // date, time, timestamp, timestamptz, interval, timetz, json, jsonb
  1182, 1183, 1115, 1185, 1187, 1270, 199, 3807, // their arrays
]);

export const rowTypes: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    KEEP_AS_TEXT.has(oid) ? (value: string) => value : pg.types.getTypeParser(oid, format ?? 'text')) as pg.CustomTypesConfig['getTypeParser'],
};
