/**
 * Comparing one keyed table across databases by key ranges (see ranges.ts). Every database
 * summarizes a batch of ranges in one query; ranges whose summaries agree everywhere are
 * settled, their rows never leave the servers. A differing range is cut into pieces at keys of
 * the database that holds the most rows in it, and checked again; a differing range of a few
 * hundred rows is fetched (key and row hash only) from every database, and a key missing from
 * a database's fetch is looked up there by the key's equality operators (a key spelled
 * differently there, e.g. numeric 1.0 and 1.00), so a reported difference is exact. Only for
 * keys every database orders alike (ranges.ts, stableOrder).
 *
 * Ranges are worked through depth first, in key order: memory holds a batch of ranges and one
 * leaf batch of keys and hashes, whatever the table's size.
 */
import type { TableInfo } from '../catalog/tables.js';
import type { Session } from '../db/session.js';
import type { RowKey } from '../types.js';
import { cut, leafRows, lookupKeys, samplePoints, splitPoints, summarize, type KeyInterval, type KeyRow, type SummaryHash } from './ranges.js';

/**
 * A table of up to this many rows (by the planner's estimate) is first summarized whole, in one
 * scan per database; a larger one starts as ranges of about RANGE_ROWS rows (cut at keys of a
 * sample of its pages), a few at a time, so that progress is reported as they settle.
 */
const WHOLE_ROWS = 2_000_000;
const RANGE_ROWS = 250_000;
const FIRST_BATCH = 16;
/** Pieces a differing range is cut into (the whole table: about twice as many, from a sample). */
const FANOUT = 32;
/** A differing range of at most this many rows (on every database) is compared key by key. */
const LEAF_ROWS = 500;
/** Most ranges in one summary query; most rows (on one database) in one leaf fetch. */
const BATCH = 256;
const LEAF_BATCH_ROWS = 20_000;
/** Cuts before a range is fetched whatever its size (databases that order keys very differently). */
const MAX_DEPTH = 10;

/** A key whose row differs: its text form, parsed value, and row hash on each database (null: no row). */
export interface FoundKey {
  kt: string[];
  key: RowKey;
  hashes: (string | null)[];
}

export interface TableCheck {
  /** Every database of the sync, the first one first. */
  sessions: Session[];
  /** The table as the first database's catalog describes it. */
  table: TableInfo;
  columns: string[];
  hash: SummaryHash;
  /** Rows of the first database settled (equal, or compared key by key). */
  settled(rows: number): void;
  /** Differing keys, a batch at a time, in key order. */
  differ(keys: FoundKey[]): Promise<void>;
}

interface Pending {
  range: KeyInterval;
  depth: number;
  /** Set once summarized as a differing range small enough to compare key by key. */
  leaf?: { rows: number; first: number };
}

/** Compares the table; resolves with its row count on each database. */
export async function compareKeyed(c: TableCheck, estimate: number): Promise<number[]> {
  const first = c.sessions[0]!;
  const totals = c.sessions.map(() => 0);
  const whole: KeyInterval = { lo: null, hi: null };
  const start = estimate <= WHOLE_ROWS ? [whole] : cut(whole, await samplePoints(first, c.table, estimate, Math.min(4096, Math.ceil(estimate / RANGE_ROWS))));
  // Ranges in key order. Pieces of a cut range take its place at the front: depth first, so
  // the queue stays short and differences come in key order.
  const queue: Pending[] = start.map((range) => ({ range, depth: 0 }));
  while (queue.length > 0) {
    const leaves = takeWhile(queue, (p) => p.leaf !== undefined);
    if (leaves.length > 0) {
      for (const group of byRows(leaves.map((p) => ({ ...p.leaf!, range: p.range })), LEAF_BATCH_ROWS)) {
        await compareLeaves(c, (s) => leafRows(s, c.table, c.columns, group.map((l) => l.range)));
        c.settled(group.reduce((n, l) => n + l.first, 0));
      }
      continue;
    }
    const max = queue[0]!.depth === 0 && start.length > 1 ? FIRST_BATCH : BATCH;
    const batch = takeWhile(queue, (p, i) => p.leaf === undefined && i < max);
    const sums = await Promise.all(c.sessions.map((s) => summarize(s, c.table, c.columns, c.hash, batch.map((p) => p.range))));
    const next: (Pending | { p: Pending; counts: number[] })[] = [];
    batch.forEach((p, i) => {
      const per = sums.map((x) => x[i]!);
      if (p.depth === 0) per.forEach((x, d) => (totals[d]! += x.n));
      if (per.every((x) => x.digest === per[0]!.digest)) return c.settled(per[0]!.n);
      const rows = Math.max(...per.map((x) => x.n));
      if (rows <= LEAF_ROWS || p.depth >= MAX_DEPTH) next.push({ ...p, leaf: { rows, first: per[0]!.n } });
      else next.push({ p, counts: per.map((x) => x.n) });
    });
    const splits = next.filter((x): x is { p: Pending; counts: number[] } => 'counts' in x);
    const pieces = await cutRanges(c, splits);
    queue.unshift(...next.flatMap((x) => ('counts' in x ? pieces[splits.indexOf(x)]! : [x])));
  }
  return totals;
}

/** Removes and returns the items at the front of `queue` for which `ok` holds. */
function takeWhile<T>(queue: T[], ok: (item: T, i: number) => boolean): T[] {
  let n = 0;
  while (n < queue.length && ok(queue[n]!, n)) n++;
  return queue.splice(0, n);
}

/** `items` in consecutive groups of at most `max` rows (an item larger than that alone). */
export function byRows<T extends { rows: number }>(items: readonly T[], max: number): T[][] {
  const out: T[][] = [];
  let rows = 0;
  for (const item of items) {
    if (out.length === 0 || rows + item.rows > max) {
      out.push([]);
      rows = 0;
    }
    out.at(-1)!.push(item);
    rows += item.rows;
  }
  return out;
}

/** Cuts each range into about FANOUT pieces at keys of the database with the most rows in it. */
async function cutRanges(c: TableCheck, splits: { p: Pending; counts: number[] }[]): Promise<Pending[][]> {
  const byDb = new Map<number, number[]>();
  splits.forEach((s, i) => {
    const d = s.counts.indexOf(Math.max(...s.counts));
    byDb.set(d, [...(byDb.get(d) ?? []), i]);
  });
  const pieces: KeyInterval[][] = splits.map(() => []);
  const root = splits.findIndex((s) => s.p.range.lo === null && s.p.range.hi === null);
  if (root >= 0) {
    // The whole table: cut at a sample of the pages of the database with the most rows.
    const { counts } = splits[root]!;
    const d = counts.indexOf(Math.max(...counts));
    const points = await samplePoints(c.sessions[d]!, c.table, counts[d]!, 2 * FANOUT);
    // (An empty sample, unlikely but possible: the exact cut below does it.)
    if (points.length > 0) {
      pieces[root] = cut(splits[root]!.p.range, points);
      byDb.get(d)!.splice(byDb.get(d)!.indexOf(root), 1);
    }
  }
  await Promise.all(
    [...byDb].filter(([, members]) => members.length > 0).map(async ([d, members]) => {
      const ranges = members.map((i) => splits[i]!.p.range);
      const steps = members.map((i) => Math.ceil(splits[i]!.counts[d]! / FANOUT));
      const points = await splitPoints(c.sessions[d]!, c.table, ranges, steps);
      members.forEach((i, n) => (pieces[i] = cut(ranges[n]!, points[n]!)));
    }),
  );
  return splits.map((s, i) => pieces[i]!.map((range) => ({ range, depth: s.p.depth + 1 })));
}

/** The key of a fetched row, by column name. */
function keyOf(t: TableInfo, row: KeyRow): RowKey {
  const key: RowKey = {};
  t.key.forEach((k, i) => (key[k] = row[`k${i}`]));
  return key;
}

/**
 * Compares key by key the rows that `fetch` gets from each database (those of some ranges or
 * buckets, `i` numbering them in key order); reports the keys that differ.
 */
export async function compareLeaves(c: TableCheck, fetch: (s: Session) => Promise<KeyRow[]>): Promise<void> {
  const n = c.sessions.length;
  const found = new Map<string, FoundKey & { range: number }>();
  const fetched = await Promise.all(c.sessions.map(fetch));
  fetched.forEach((rows, d) =>
    rows.forEach((row) => {
      const id = JSON.stringify(row.kt);
      let f = found.get(id);
      if (!f) found.set(id, (f = { kt: row.kt, key: keyOf(c.table, row), hashes: new Array<string | null>(n).fill(null), range: row.i }));
      f.hashes[d] = row.h;
    }),
  );
  const differing = [...found.values()].filter((f) => f.hashes.some((h) => h !== f.hashes[0]));
  // A key a database did not return in these ranges may still be there (in another range by
  // that database's order): look it up by equality.
  await Promise.all(
    c.sessions.map(async (s, d) => {
      const missing = differing.filter((f) => f.hashes[d] === null);
      for (const row of await lookupKeys(s, c.table, c.columns, missing.map((f) => f.kt))) missing[row.i]!.hashes[d] = row.h;
    }),
  );
  const out = differing.filter((f) => f.hashes.some((h) => h !== f.hashes[0]));
  out.sort((x, y) => x.range - y.range || compareKeys(x.key, y.key, c.table.key));
  if (out.length > 0) await c.differ(out.map(({ kt, key, hashes }) => ({ kt, key, hashes })));
}

const INTEGER = /^-?\d+$/;

/** An order for reports within a range: integers by value, anything else by its text, column by column. */
function compareKeys(a: RowKey, b: RowKey, key: readonly string[]): number {
  for (const k of key) {
    const x = String(a[k]);
    const y = String(b[k]);
    const c = INTEGER.test(x) && INTEGER.test(y) ? Number(BigInt(x) - BigInt(y) > 0n) - Number(BigInt(x) - BigInt(y) < 0n) : x < y ? -1 : x > y ? 1 : 0;
    if (c !== 0) return c;
  }
  return 0;
}
