/**
 * Comparing a table by hash buckets instead of key ranges, for tables whose key order may
 * differ between databases and for tables without a key.
 *
 * Rows are bucketed by the first hex digits of an md5: of the key's text (`by: 'key'`: keys
 * of types whose order depends on a collation, an enum's labels or a user type, where two
 * databases could order them differently) or of the whole row's text (`by: 'row'`: no key; the
 * rows are a multiset). The same key or row falls in the same bucket on every database,
 * whatever the collations. Each database summarizes every bucket in one query (count and the
 * sum of the rows' hashes); differing buckets are cut by two more digits until they are small;
 * then their keys and row hashes (by key) or their distinct rows with the number of copies (by
 * row) are fetched. Every step reads the whole table on the server; only the rows of small
 * differing buckets travel.
 */
import type { Session } from '../db/session.js';
import { ident, qualified } from '../sql/ident.js';
import type { RowKey } from '../types.js';
import { byRows, compareLeaves, type TableCheck } from './compare.js';
import { bucketKeyRows, keyHash, rowHash, summaryHash, summaryOf, sums, type RangeSummary } from './ranges.js';

/** A bucket of at most this many rows (on every database) is compared row by row. */
const LEAF_ROWS = 2000;
/** Deepest bucket prefix (hex digits): past it only copies of the same rows remain. */
const MAX_DIGITS = 8;
/** Most rows (on one database) in one leaf fetch, as the buckets' counts tell. */
const LEAF_BATCH_ROWS = 20_000;

export type BucketBy = 'key' | 'row';

/** A distinct row that the databases hold a different number of times. */
export interface MultisetDifference {
  key: RowKey;
  /** Copies of the row on each database. */
  copies: number[];
}

/** Bucket summaries at `digits`, among the buckets of `within` (prefixes one level up; null: all). */
async function summaries(s: Session, c: TableCheck, by: BucketBy, digits: number, within: string[] | null): Promise<Map<string, RangeSummary>> {
  // By row, the bucket's md5 is the row's hash too; by key, the row is hashed as key ranges are.
  const inner = by === 'row' ? `${rowHash(c.columns)} AS h` : `${keyHash(c.table)} AS h, ${summaryHash(c.columns, c.hash)} AS x`;
  const x = by === 'row' ? `('x' OPERATOR(pg_catalog.||) pg_catalog.substr(q.h, 17, 16))::bit(64)::int8` : 'q.x';
  const r = await s.query<{ p: string; n: string; s: string }>(
    `SELECT pg_catalog.left(q.h, $1) AS p, ${sums(x)}
       FROM (SELECT ${inner} FROM ONLY ${qualified(c.table)} t OFFSET 0) q
      ${within ? 'WHERE pg_catalog.left(q.h, $2) OPERATOR(pg_catalog.=) ANY($3::text[])' : ''} GROUP BY 1`,
    within ? [digits, digits - 2, within] : [digits],
  );
  return new Map(r.rows.map((row) => [row.p, summaryOf(row)]));
}

/** The distinct rows of some buckets (by row): hash, copies, and the row's columns as `c0`, `c1`, … */
async function distinctRows(s: Session, c: TableCheck, digits: number, prefixes: string[]): Promise<{ h: string; n: number; [k: string]: unknown }[]> {
  const cols = c.columns.map((col, i) => `t.${ident(col)} AS c${i}`).join(', ');
  const r = await s.query<{ h: string; n: string }>(
    `SELECT z.* FROM (SELECT q.*, pg_catalog.count(*) OVER w AS n, pg_catalog.row_number() OVER w AS pgferry_rn
                        FROM (SELECT ${rowHash(c.columns)} AS h, ${cols} FROM ONLY ${qualified(c.table)} t) q
                       WHERE pg_catalog.left(q.h, $1) OPERATOR(pg_catalog.=) ANY($2::text[]) WINDOW w AS (PARTITION BY q.h)) z
      WHERE z.pgferry_rn = 1 ORDER BY z.h`,
    [digits, prefixes],
  );
  return r.rows.map((x) => ({ ...x, n: Number(x.n) }));
}

/**
 * Compares the table bucket by bucket; differing small buckets go to `leaves` (a batch of
 * bucket prefixes at `digits` at a time). Resolves with the table's row count on each database.
 */
async function compareBuckets(c: TableCheck, by: BucketBy, leaves: (digits: number, prefixes: string[]) => Promise<void>): Promise<number[]> {
  let totals: number[] | null = null;
  let level: { digits: number; within: string[] | null } = { digits: 2, within: null };
  while (level.within === null || level.within.length > 0) {
    const { digits, within } = level;
    const per = await Promise.all(c.sessions.map((s) => summaries(s, c, by, digits, within)));
    totals ??= per.map((m) => [...m.values()].reduce((n, x) => n + x.n, 0));
    const next: string[] = [];
    const small: { p: string; rows: number }[] = [];
    for (const p of new Set(per.flatMap((m) => [...m.keys()]))) {
      const sums = per.map((m) => m.get(p));
      if (sums.every((x) => x?.digest === sums[0]?.digest)) {
        c.settled(sums[0]?.n ?? 0);
        continue;
      }
      const rows = Math.max(...sums.map((x) => x?.n ?? 0));
      if (rows <= LEAF_ROWS || digits >= MAX_DIGITS) small.push({ p, rows });
      else next.push(p);
    }
    small.sort((x, y) => (x.p < y.p ? -1 : 1));
    // (A deepest bucket may hold many copies of a few rows: they are fetched once each.)
    for (const batch of byRows(small, LEAF_BATCH_ROWS)) {
      const group = batch.map((l) => l.p);
      await leaves(digits, group);
      c.settled(group.reduce((n, p) => n + (per[0]!.get(p)?.n ?? 0), 0));
    }
    level = { digits: digits + 2, within: next.sort() };
  }
  return totals ?? c.sessions.map(() => 0);
}

/** Compares a keyed table by buckets of its keys' hashes; differing keys go to `c.differ`. */
export async function compareKeyedByBuckets(c: TableCheck): Promise<number[]> {
  return compareBuckets(c, 'key', (digits, prefixes) => compareLeaves(c, (s) => bucketKeyRows(s, c.table, c.columns, digits, prefixes)));
}

/**
 * Compares the table's rows as multisets; `differ` gets the distinct rows whose number of
 * copies differs. Resolves with the table's row count on each database.
 */
export async function compareMultiset(c: TableCheck, differ: (found: MultisetDifference[]) => void): Promise<number[]> {
  return compareBuckets(c, 'row', async (digits, prefixes) => {
    const fetched = await Promise.all(c.sessions.map((s) => distinctRows(s, c, digits, prefixes)));
    const rows = new Map<string, MultisetDifference>();
    fetched.forEach((list, d) =>
      list.forEach((row) => {
        let r = rows.get(row.h);
        if (!r) {
          const key: RowKey = {};
          c.columns.forEach((col, i) => (key[col] = row[`c${i}`]));
          rows.set(row.h, (r = { key, copies: c.sessions.map(() => 0) }));
        }
        r.copies[d] = row.n;
      }),
    );
    differ([...rows.values()].filter((r) => r.copies.some((n) => n !== r.copies[0])));
  });
}
