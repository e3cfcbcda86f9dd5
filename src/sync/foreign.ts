/**
 * Receivers that are not PostgreSQL (SQLite, MySQL/MariaDB, Redis) in a run. They cannot take
 * COPY data, so a chunk's changed rows are read from each source that changed them (the same
 * query that stages them for PostgreSQL receivers, apply/applier.ts changedRowsSelect) through
 * a cursor a batch at a time (apply/batches.ts), passed through the table's transform when it
 * has one (as staged rows are), and handed to the receiver as upserts and deletes. Each chunk
 * is one transaction on the receiver, committed with the chunk's other receivers; the
 * watermarks move only after the last chunk. Memory holds one batch.
 *
 * Foreign keys between the run's tables are not ordered on these receivers: a table's deletes
 * and upserts go together, table by table in foreign-key order.
 */
import pg from 'pg';
import { changedRowsSelect } from '../apply/staging.js';
import { readBatches } from '../apply/batches.js';
import { transformRow, type StagedTransform } from '../apply/transform.js';
import { rowTypes } from '../db/row-types.js';
import { qualified, identList } from '../sql/ident.js';
import { STAGING } from '../sql/names.js';
import type { Receiver, ReceiverTable } from '../receivers/receiver.js';
import { batchTypes, textTypes } from '../receivers/values.js';
import type { Row, RowKey } from '../types.js';
import type { ChunkPlan } from './chunk.js';
import type { Run, RunTable } from './context.js';
import { rowFilter, transformFor } from './partial.js';

/** How often copy:progress reports during a copy. */
const PROGRESS_EVERY_MS = 250;

/** What a chunk wrote to one table of one receiver (for rows:applied). */
export interface ForeignApplied {
  table: string;
  upserted: RowKey[];
  deleted: RowKey[];
  count: number;
}

/** A run table as receivers of other kinds see it. */
export function receiverTable(t: RunTable): ReceiverTable {
  const travelling = new Set(t.columns);
  return {
    display: t.display,
    schema: t.info.schema,
    name: t.info.name,
    key: t.info.key,
    columns: t.info.columns.filter((c) => travelling.has(c.name)).map((c) => ({ name: c.name, type: c.type, typeOid: c.typeOid, elemOid: c.elemOid })),
  };
}

/** Checks the run's tables on receiver `r` once per run. */
export async function checkForeign(run: Run, r: Receiver): Promise<void> {
  if (run.checkedForeign.has(r.name)) return;
  await r.check(run.tables.map(receiverTable));
  run.checkedForeign.add(r.name);
}

/** How rows bound for `r` are parsed: as transforms get them, as text for Redis, else numbers, booleans and bytea parsed. */
function typesFor(r: Receiver, tr: StagedTransform | undefined): pg.CustomTypesConfig {
  if (tr) return rowTypes;
  return r.kind === 'redis' ? textTypes : batchTypes;
}

/** The key of a row, as rows:applied reports keys of a PostgreSQL target (node-postgres parsing). */
function eventKey(row: Row, t: RunTable, text: boolean): RowKey {
  const key: RowKey = {};
  for (const k of t.info.key) {
    const v = row[k];
    const oid = t.info.columns.find((c) => c.name === k)!.typeOid;
    key[k] = text && typeof v === 'string' ? pg.types.getTypeParser(oid, 'text')(v) : v;
  }
  return key;
}

function keyOf(row: Row, t: RunTable): RowKey {
  const key: RowKey = {};
  for (const k of t.info.key) key[k] = row[k];
  return key;
}

/**
 * One chunk on receiver `r` (in its open transaction): with the run's first chunk, tables
 * emptied (whole copies, TRUNCATEs) children first and whole copies made; then each table's
 * changed rows of the chunk. `count` adds a source's rows of a table to the run result once
 * per chunk (whichever receiver counts them first).
 */
export async function applyForeignChunk(
  run: Run,
  plan: ChunkPlan,
  r: Receiver,
  count: (source: string, t: RunTable, upserted: number, deleted: number) => void,
  wantKeys: boolean,
): Promise<ForeignApplied[]> {
  await checkForeign(run, r);
  const name = r.name;
  if (plan.first) {
    for (const t of [...run.tables].reverse()) if (t.copyInto.has(name) || t.truncatedOn.size > 0) await r.truncate(receiverTable(t));
    for (const t of run.tables) if (t.copyInto.has(name)) t.result.upserted += await copyWhole(run, r, t);
  }
  const out: ForeignApplied[] = [];
  for (const [t, steps] of plan.work) {
    // The late deletes of a referenced table were made with its upserts.
    if (!steps.has('upsert') && !steps.has('delete')) continue;
    const rt = receiverTable(t);
    const tr = transformFor(run, t, name);
    const types = typesFor(r, tr);
    const applied: ForeignApplied = { table: t.display, upserted: [], deleted: [], count: 0 };
    // A whole copy brought the first source's rows (unless a TRUNCATE elsewhere empties it again).
    const skip = t.copyInto.has(name) && t.truncatedOn.size === 0 ? run.sources[0] : undefined;
    for (const [src, read] of run.reads) {
      if (src === skip || (t.counts.get(src) ?? 0) === 0) continue;
      let upserted = 0;
      let deleted = 0;
      const select = changedRowsSelect(src, t.info, t.temp, t.columns, plan.range, false, rowFilter(t));
      for await (const rows of readBatches(read.session, select, types)) {
        const upserts: Row[] = [];
        const deletes: RowKey[] = [];
        for (const row of rows) {
          // Parsed as a boolean, or 't'/'f' where every value is read as text (Redis).
          if (row[STAGING.present] !== true && row[STAGING.present] !== 't') {
            deletes.push(keyOf(row, t));
            continue;
          }
          const written = tr ? await transformRow(row, t.columns, t.info.key, tr) : row;
          if (written) upserts.push(written);
        }
        const w = await r.apply(rt, { upserts, deletes });
        upserted += w.upserted;
        deleted += w.deleted;
        if (wantKeys) {
          applied.upserted.push(...upserts.map((x) => eventKey(x, t, types === textTypes)));
          applied.deleted.push(...deletes.map((x) => eventKey(x, t, types === textTypes)));
        }
      }
      applied.count += upserted + deleted;
      count(src, t, upserted, deleted);
    }
    // Rows merged by a resolver go with the table's first chunk (counted at commit).
    if ((plan.range?.from ?? 0) === 0 && t.merged.length > 0) {
      const merged: Row[] = [];
      for (const m of t.merged) {
        const written = tr ? await transformRow(m, t.columns, t.info.key, tr) : m;
        if (written) merged.push(written);
      }
      await r.apply(rt, { upserts: merged, deletes: [] });
      applied.count += merged.length;
      if (wantKeys) applied.upserted.push(...merged.map((x) => keyOf(x, t)));
    }
    out.push(applied);
  }
  return out;
}

/** The whole table `t` (its rows that pass the filter, through its transform) into the emptied table on `r`, at the first source's snapshot. */
export async function copyWhole(run: Run, r: Receiver, t: RunTable): Promise<number> {
  const source = run.firstRead.session;
  const tr = transformFor(run, t, r.name);
  const types = typesFor(r, tr);
  const { emit } = run.deps;
  const wants = emit.wants('copy:progress');
  const totalEstimate = wants ? Number((await source.query<{ n: string }>(`SELECT greatest(reltuples, 0)::bigint::text AS n FROM pg_catalog.pg_class WHERE oid = $1`, [t.info.oid])).rows[0]?.n ?? -1) : -1;
  const select = `SELECT ${identList(t.columns)} FROM ONLY ${qualified(t.info)} WHERE ${rowFilter(t) ?? 'true'}`;
  async function* rows(): AsyncGenerator<Row[]> {
    for await (const batch of readBatches(source, select, types)) {
      if (!tr) {
        yield batch;
        continue;
      }
      const kept: Row[] = [];
      for (const row of batch) {
        const written = await transformRow(row, t.columns, t.info.key, tr);
        if (written) kept.push(written);
      }
      yield kept;
    }
  }
  let last = performance.now();
  const report = (n: number, done: boolean) => emit('copy:progress', { sync: run.sync, table: t.display, target: r.name, rows: n, totalEstimate, done });
  const n = await r.fullCopy(receiverTable(t), rows(), (n) => {
    if (!wants || performance.now() - last < PROGRESS_EVERY_MS) return;
    last = performance.now();
    report(n, false);
  });
  if (wants) report(n, true);
  return n;
}

/** Phase 5 for a 'fullcopy' receiver of another kind: every table, emptied and copied, in one transaction. */
export async function copyAllToForeign(run: Run, name: string): Promise<void> {
  const r = await run.receiver(name);
  await r.begin();
  try {
    await checkForeign(run, r);
    for (const t of [...run.tables].reverse()) await r.truncate(receiverTable(t));
    for (const t of run.tables) t.result.upserted += await copyWhole(run, r, t);
    await r.fence(run.sync, run.generation);
    await r.commit();
  } catch (err) {
    await r.rollback();
    throw err;
  }
}
