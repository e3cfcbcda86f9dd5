/**
 * Comparing a table without a key: its rows are a multiset. Rows are bucketed by the first
 * hex digits of the md5 of their text (the same row falls in the same bucket on every database, whatever
 * the collations), each database summarizes every bucket in one query, and differing buckets
 * are cut by two more digits until they are small; then the distinct rows of a bucket with
 * their number of copies are fetched. Every level reads the whole table on the server; only
 * the rows of small differing buckets travel.
 */
import type { Session } from '../db/session.js';
import { ident, qualified } from '../sql/ident.js';
import type { RowKey } from '../types.js';
import { byRows, type TableCheck } from './compare.js';
import { rowHash, summaryOf, sums, type RangeSummary } from './ranges.js';

/** A bucket of at most this many rows (on every database) is compared row by row. */
const LEAF_ROWS = 2000;
/** Deepest bucket prefix (hex digits): past it only copies of the same rows remain. */
const MAX_DIGITS = 8;
/** Most rows (on one database) in one leaf fetch, as the buckets' counts tell. */
const LEAF_BATCH_ROWS = 20_000;

/** A distinct row that the databases hold a different number of times. */
export interface MultisetDifference {
  key: RowKey;
  /** Copies of the row on each database. */
  copies: number[];
}

/** Bucket summaries at `digits`, among the buckets of `within` (prefixes one level up; null: all). */
async function buckets(s: Session, c: TableCheck, digits: number, within: string[] | null): Promise<Map<string, RangeSummary>> {
  const r = await s.query<{ p: string; n: string; s: string }>(
    `SELECT pg_catalog.left(q.h, $1) AS p, ${sums(`('x' OPERATOR(pg_catalog.||) pg_catalog.substr(q.h, 17, 16))::bit(64)::int8`)}
       FROM (SELECT ${rowHash(c.columns)} AS h FROM ONLY ${qualified(c.table)} t OFFSET 0) q
      ${within ? 'WHERE pg_catalog.left(q.h, $2) OPERATOR(pg_catalog.=) ANY($3::text[])' : ''} GROUP BY 1`,
    within ? [digits, digits - 2, within] : [digits],
  );
  return new Map(r.rows.map((x) => [x.p, summaryOf(x)]));
}

/** The distinct rows of some buckets: hash, copies, and the row's columns as `c0`, `c1`, … */
async function bucketRows(s: Session, c: TableCheck, digits: number, prefixes: string[]): Promise<{ h: string; n: number; [k: string]: unknown }[]> {
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
 * Compares the table's rows as multisets; `differ` gets the distinct rows whose number of
 * copies differs. Resolves with the table's row count on each database.
 */
export async function compareMultiset(c: TableCheck, differ: (found: MultisetDifference[]) => void): Promise<number[]> {
  let totals: number[] | null = null;
  let level: { digits: number; within: string[] | null } = { digits: 2, within: null };
  while (level.within === null || level.within.length > 0) {
    const { digits, within } = level;
    const per = await Promise.all(c.sessions.map((s) => buckets(s, c, digits, within)));
    totals ??= per.map((m) => [...m.values()].reduce((n, x) => n + x.n, 0));
    const next: string[] = [];
    const leaves: { p: string; rows: number }[] = [];
    for (const p of new Set(per.flatMap((m) => [...m.keys()]))) {
      const sums = per.map((m) => m.get(p));
      if (sums.every((x) => x?.digest === sums[0]?.digest)) {
        c.settled(sums[0]?.n ?? 0);
        continue;
      }
      const rows = Math.max(...sums.map((x) => x?.n ?? 0));
      if (rows <= LEAF_ROWS || digits >= MAX_DIGITS) leaves.push({ p, rows });
      else next.push(p);
    }
    leaves.sort((x, y) => (x.p < y.p ? -1 : 1));
    // (A deepest bucket may hold many copies of a few rows: they are fetched once each.)
    for (const batch of byRows(leaves, LEAF_BATCH_ROWS)) {
      const group = batch.map((l) => l.p);
      differ(await compareBuckets(c, digits, group));
      c.settled(group.reduce((n, p) => n + (per[0]!.get(p)?.n ?? 0), 0));
    }
    level = { digits: digits + 2, within: next.sort() };
  }
  return totals ?? c.sessions.map(() => 0);
}

async function compareBuckets(c: TableCheck, digits: number, prefixes: string[]): Promise<MultisetDifference[]> {
  const fetched = await Promise.all(c.sessions.map((s) => bucketRows(s, c, digits, prefixes)));
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
  return [...rows.values()].filter((r) => r.copies.some((n) => n !== r.copies[0]));
}
