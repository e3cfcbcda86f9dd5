/**
 * The queries of validate(): what each database says about ranges of a table's keys, computed
 * on the server, one query per database for a whole batch of ranges.
 *
 * A range is `(lo, hi]` in the key's order (the key index's btree order), with either end
 * open. Its bounds are key values in their text form (as the first database prints them in
 * pgferry's pinned settings), sent as text arrays and cast to the key columns' types on the
 * server, so every range scan is an index range scan. Ranges are used only for keys that every
 * database orders alike (stableOrder); others are bucketed by hash (buckets.ts). The exact
 * comparison of a key (lookupKeys) uses the key's equality operators, never its order.
 *
 * A range's summary is its row count and the sum (exact, in numeric; order-independent) of a
 * 64-bit hash of each row's text form (`ROW(columns)::text`, in pgferry's pinned settings):
 * `hashtextextended` where every database computes it alike (a probe at the start; it may
 * differ between byte orders), else the first 64 bits of md5. Rows compared key by key are
 * compared by the md5 of their text.
 */
import type { TableInfo } from '../catalog/tables.js';
import type { Session } from '../db/session.js';
import { ident, identList, qualified } from '../sql/ident.js';

/** Keys `(lo, hi]` by their text form; null is an open end. */
export interface KeyInterval {
  lo: string[] | null;
  hi: string[] | null;
}

/** A range's row count and hash sum on one database. */
export interface RangeSummary {
  n: number;
  /** `count:sum`, equal on two databases when they hold the same rows (but for a 2^-64 chance). */
  digest: string;
}

/** How a range's rows are hashed for its summary: 'fast' (hashtextextended) or 'md5'. */
export type SummaryHash = 'fast' | 'md5';

/** Text whose hashtextextended every database must agree on before 'fast' is used. */
const PROBE = 'pgferry: the same hash everywhere? ñ €';

/** hashtextextended of a fixed text on this database: where two differ, use 'md5'. */
export async function hashProbe(s: Session): Promise<string> {
  const r = await s.query<{ h: string }>(`SELECT pg_catalog.hashtextextended($1::text COLLATE "C", 0)::text AS h`, [PROBE]);
  return r.rows[0]!.h;
}

/** A 64-bit hash (int8) of a row's text, for alias `t`. */
export function summaryHash(columns: readonly string[], hash: SummaryHash): string {
  const text = `ROW(${identList(columns, 't')})::text`;
  return hash === 'fast'
    ? `pg_catalog.hashtextextended(${text} COLLATE "C", 0)`
    : `('x' OPERATOR(pg_catalog.||) pg_catalog.left(pg_catalog.md5(${text}), 16))::bit(64)::int8`;
}

/** A row of a range as a leaf fetch or a key lookup returns it. */
export interface KeyRow {
  /** Index of the range (leaf fetch) or of the looked-up key. */
  i: number;
  /** The key's text form, one entry per key column. */
  kt: string[];
  /** md5 of the row's text form. */
  h: string;
  /** The key columns as node-postgres parses them, as `k0`, `k1`, … */
  [k: string]: unknown;
}

/** md5 of a row's text, for alias `t`. */
export function rowHash(columns: readonly string[]): string {
  return `pg_catalog.md5(ROW(${identList(columns, 't')})::text)`;
}

/** count and hash sum (as text) of int8 row hashes `h`. */
export function sums(h: string): string {
  return `pg_catalog.count(*)::text AS n, coalesce(pg_catalog.sum(${h}), 0)::text AS s`;
}

export function summaryOf(row: { n: string; s: string }): RangeSummary {
  return { n: Number(row.n), digest: `${row.n}:${row.s}` };
}

/** `expr` (a key's text) cast to the type of key column `i`. */
export function castKey(t: TableInfo, i: number, expr: string): string {
  const col = t.columns.find((c) => c.name === t.key[i])!;
  return `(${expr})::${col.type}`;
}

/** `(t.k1, t.k2) > (bound)` with the bound's columns `r.<prefix>0`, `r.<prefix>1`, …. */
function compare(t: TableInfo, op: '>' | '<=', prefix: string): string {
  const left = identList(t.key, 't');
  const right = t.key.map((_, i) => castKey(t, i, `r.${prefix}${i}`)).join(', ');
  return t.key.length === 1 ? `${left} ${op} ${right}` : `(${left}) ${op} (${right})`;
}

interface Built {
  text: string;
  values: unknown[];
}

/**
 * One query for a batch of ranges: a branch per shape of range (both ends, one, none), each an
 * `unnest` of the ranges' bounds with the range's own SELECT (`select(where)`, over `ONLY
 * table t`) joined LATERAL. `extra` gives each range a bigint `r.x`. Rows come with `i`, the
 * range's index in `ranges`.
 */
export function rangeQuery(t: TableInfo, ranges: readonly KeyInterval[], select: (where: string) => string, extra?: (i: number) => number): Built {
  const values: unknown[] = [];
  const param = (v: unknown[], type: string): string => {
    values.push(v);
    return `$${values.length}::${type}[]`;
  };
  const branches: string[] = [];
  for (const [hasLo, hasHi] of [[true, true], [false, true], [true, false], [false, false]] as const) {
    const members = ranges.map((r, i) => ({ r, i })).filter(({ r }) => (r.lo !== null) === hasLo && (r.hi !== null) === hasHi);
    if (members.length === 0) continue;
    const cols = ['i'];
    const arrays = [param(members.map((m) => m.i), 'int4')];
    const where: string[] = [];
    for (const [end, prefix, op] of [['lo', 'l', '>'], ['hi', 'h', '<=']] as const) {
      if (end === 'lo' ? !hasLo : !hasHi) continue;
      t.key.forEach((_, k) => {
        cols.push(`${prefix}${k}`);
        arrays.push(param(members.map((m) => m.r[end]![k]), 'text'));
      });
      where.push(compare(t, op, prefix));
    }
    if (extra) {
      cols.push('x');
      arrays.push(param(members.map((m) => extra(m.i)), 'int8'));
    }
    branches.push(
      `SELECT r.i, x.* FROM ROWS FROM (${arrays.map((a) => `pg_catalog.unnest(${a})`).join(', ')}) AS r(${cols.join(', ')})
         CROSS JOIN LATERAL (${select(where.length ? where.join(' AND ') : 'true')}) x`,
    );
  }
  return { text: branches.join('\nUNION ALL\n'), values };
}

/** Count and hash sum of every range, on one database (one query). */
export async function summarize(s: Session, t: TableInfo, columns: readonly string[], hash: SummaryHash, ranges: readonly KeyInterval[]): Promise<RangeSummary[]> {
  const q = rangeQuery(t, ranges, (where) => `SELECT ${sums(summaryHash(columns, hash))} FROM ONLY ${qualified(t)} t WHERE ${where}`);
  const r = await s.query<{ i: number; n: string; s: string }>(q.text, q.values);
  const out: RangeSummary[] = ranges.map(() => ({ n: 0, digest: '0:0' }));
  for (const row of r.rows) out[row.i] = summaryOf(row);
  return out;
}

/** The key's text form, for alias `t`: one text per key column. */
function keyText(t: TableInfo): string {
  return `ARRAY[${t.key.map((k) => `t.${ident(k)}::text`).join(', ')}]`;
}

/**
 * Bounds that cut each range into pieces of `steps[i]` rows on this database: every
 * `steps[i]`-th key of the range in key order (one query).
 */
export async function splitPoints(s: Session, t: TableInfo, ranges: readonly KeyInterval[], steps: readonly number[]): Promise<string[][][]> {
  const q = rangeQuery(
    t,
    ranges,
    (where) => `SELECT p.b FROM (SELECT ${keyText(t)} AS b, pg_catalog.row_number() OVER (ORDER BY ${identList(t.key, 't')}) AS rn
                                   FROM ONLY ${qualified(t)} t WHERE ${where}) p
                 WHERE p.rn % r.x = 0 ORDER BY p.rn`,
    (i) => Math.max(1, steps[i]!),
  );
  const r = await s.query<{ i: number; b: string[] }>(q.text, q.values);
  const out: string[][][] = ranges.map(() => []);
  for (const row of r.rows) out[row.i]!.push(row.b);
  return out;
}

/** Pieces of `range` cut at `points` (in order). */
export function cut(range: KeyInterval, points: readonly string[][]): KeyInterval[] {
  const out: KeyInterval[] = [];
  let lo = range.lo;
  for (const p of points) {
    out.push({ lo, hi: p });
    lo = p;
  }
  out.push({ lo, hi: range.hi });
  return out;
}

/** The selected key columns as `k0`, `k1`, … (parsed by node-postgres, for reports). */
function keyColumns(t: TableInfo): string {
  return t.key.map((k, i) => `t.${ident(k)} AS k${i}`).join(', ');
}

/** md5 of the key's text, for alias `t` (the bucket of a key, see buckets.ts). */
export function keyHash(t: TableInfo): string {
  return `pg_catalog.md5(ROW(${identList(t.key, 't')})::text)`;
}

/** Built-in types whose order is the same on every database: no collation, no labels of their own. */
const COLLATABLE = new Set([18, 19, 25, 1042, 1043]);

/**
 * Whether every database orders the table's keys alike, so that key ranges select the same
 * rows everywhere: built-in types without a collation (not text, varchar, char, name; not enums
 * or user types such as citext, whose order is the database's own).
 */
export function stableOrder(t: TableInfo): boolean {
  return t.key.every((k) => {
    const c = t.columns.find((x) => x.name === k)!;
    return c.typeOid < 16384 && c.elemOid < 16384 && !COLLATABLE.has(c.typeOid) && !COLLATABLE.has(c.elemOid);
  });
}

/** Every row of some key buckets on this database (by the first `digits` of keyHash): key and row hash. */
export async function bucketKeyRows(s: Session, t: TableInfo, columns: readonly string[], digits: number, prefixes: string[]): Promise<KeyRow[]> {
  const r = await s.query<KeyRow>(
    `SELECT 0 AS i, ${keyText(t)} AS kt, ${rowHash(columns)} AS h, ${keyColumns(t)} FROM ONLY ${qualified(t)} t
      WHERE pg_catalog.left(${keyHash(t)}, $1) OPERATOR(pg_catalog.=) ANY($2::text[])`,
    [digits, prefixes],
  );
  return r.rows;
}

/** Every row of the ranges on this database: key (text and parsed) and row hash. */
export async function leafRows(s: Session, t: TableInfo, columns: readonly string[], ranges: readonly KeyInterval[]): Promise<KeyRow[]> {
  const q = rangeQuery(t, ranges, (where) => `SELECT ${keyText(t)} AS kt, ${rowHash(columns)} AS h, ${keyColumns(t)} FROM ONLY ${qualified(t)} t WHERE ${where}`);
  return (await s.query<KeyRow>(q.text, q.values)).rows;
}

/** The rows of these keys on this database (by the key's equality operators): `i` is the key's index. */
export async function lookupKeys(s: Session, t: TableInfo, columns: readonly string[], keys: readonly string[][]): Promise<KeyRow[]> {
  if (keys.length === 0) return [];
  const values: unknown[] = [keys.map((_, i) => i), ...t.key.map((_, k) => keys.map((kt) => kt[k]))];
  const cols = ['i', ...t.key.map((_, k) => `v${k}`)];
  const on = t.key.map((k, n) => `t.${ident(k)} ${t.keyOps[n]} ${castKey(t, n, `r.v${n}`)}`).join(' AND ');
  const r = await s.query<KeyRow>(
    `SELECT r.i, ${keyText(t)} AS kt, ${rowHash(columns)} AS h, ${keyColumns(t)}
       FROM ROWS FROM (${values.map((_, n) => `pg_catalog.unnest($${n + 1}::${n === 0 ? 'int4' : 'text'}[])`).join(', ')}) AS r(${cols.join(', ')})
       JOIN ONLY ${qualified(t)} t ON ${on}`,
    values,
  );
  return r.rows;
}

/** About `want` keys spread over the table, from a sample of its pages (cheap), sorted. */
export async function samplePoints(s: Session, t: TableInfo, estimate: number, want: number): Promise<string[][]> {
  const percent = Math.min(100, (100 * want * 20) / estimate);
  const r = await s.query<{ b: string[] }>(
    `SELECT ${keyText(t)} AS b FROM ONLY ${qualified(t)} t TABLESAMPLE SYSTEM ($1) ORDER BY ${identList(t.key, 't')}`,
    [percent],
  );
  const step = Math.max(1, Math.floor(r.rows.length / want));
  return r.rows.filter((_, i) => (i + 1) % step === 0).map((x) => x.b);
}
