/**
 * One chunk of a run on every receiver: stage the changed rows of the chunk's tables (COPY from
 * the source that changed them into a temporary table), then write them in an order that keeps
 * foreign keys between the tables: the run's first chunk empties tables (whole copies,
 * TRUNCATEs) children first and copies parents first; then rows gone at the source are deleted
 * from tables no other table references; then, parents first, a referenced table's gone rows
 * that nothing references any more are deleted and every table's rows are upserted; last, the
 * referenced tables' remaining gone rows are deleted, children first. apply.ts plans which
 * steps of which tables each chunk does. A target writes in a transaction of its own,
 * committed with the chunk. A source (multi-master) writes in its read transaction: it sees the snapshot the run
 * read there, so a row an application changed after it fails with a serialization error
 * (the run starts again and settles it as a conflict) instead of being overwritten, and a run
 * needs one connection per database. An onException hook may write through the chunk's
 * transactions (see exception.ts).
 */
import {
  applyDeletes,
  applyUpserts,
  checkReceivers,
  emptyExceptOwn,
  type Applied,
  type KnownUpserts,
  type ReferencingTable,
  type StagedSpan,
} from '../apply/applier.js';
import { createStaging, dropOwnOrigin, stageObjects, stageRows, stagedCounts, type KeyRange, type StagedCounts } from '../apply/staging.js';
import { emptyTable } from '../apply/fullcopy.js';
import { commitPastFence, passFence } from '../apply/fence.js';
import type { TableInfo } from '../catalog/tables.js';
import type { Session } from '../db/session.js';
import { PgferryError } from '../errors.js';
import { APPLIED_BY_SETTING, ORIGIN_SETTING } from '../sql/names.js';
import type { Receiver } from '../receivers/receiver.js';
import type { ExceptionContext } from '../types.js';
import type { Run, RunTable } from './context.js';
import { withExceptionHook } from './exception.js';
import { applyPastNewerWrites } from './newer-writes.js';
import { applyForeignChunk } from './foreign.js';
import { copyInto } from './fullcopy.js';
import { rowFilter, transformStagedRows } from './partial.js';

/** Origins of a table's staged deletes and upserts, when known without a query. */
interface KnownOrigins {
  deletes: string[];
  upserts: KnownUpserts;
}

/**
 * What a chunk does to a table. `delete`: its gone rows (a table no other table of the run
 * references). For a referenced table: `delete-early` (gone rows nothing references, before
 * its upsert) and `delete-late` (the rest, after the children were written).
 */
export type Step = 'delete' | 'delete-early' | 'upsert' | 'delete-late';

export interface ChunkPlan {
  /** Key numbers of the chunk (none: every changed key). */
  range?: KeyRange;
  /** The run's first chunk: it also empties and copies whole tables. */
  first: boolean;
  /** The tables it writes and how, in dependency order. */
  work: Map<RunTable, ReadonlySet<Step>>;
}

export class Chunk {
  readonly #run: Run;
  readonly #plan: ChunkPlan;
  readonly #wantKeys: boolean;
  /** The chunk's write transaction on each database it writes to (a source's is its read transaction). */
  readonly #writers = new Map<string, Session>();
  /** Sources and tables whose staged counts entered the run result (once per chunk). */
  readonly #counted = new Set<string>();
  readonly #applied: { target: string; table: string; up: Applied; del: Applied }[] = [];
  /** Receivers of other kinds this chunk wrote to (in a transaction each, committed with it). */
  readonly #foreign: Receiver[] = [];
  /** Targets whose transaction came prepared (Run.prepareTargets), with their tables described. */
  readonly #described = new Map<string, ReadonlyMap<string, TableInfo | null>>();

  constructor(run: Run, plan: ChunkPlan) {
    this.#run = run;
    this.#plan = plan;
    this.#wantKeys = run.deps.emit.wants('rows:applied');
  }

  async #writer(name: string): Promise<Session> {
    let w = this.#writers.get(name);
    if (w) return w;
    const read = this.#run.reads.get(name);
    const prepared = read ? undefined : await this.#run.takeTarget(name);
    if (read) {
      w = read.session;
      // Changes written here are tagged, so this sync never reads them back (no echo).
      await w.setLocal(APPLIED_BY_SETTING, this.#run.sync);
    } else if (prepared) {
      w = prepared.session;
      this.#described.set(name, prepared.infos);
    } else {
      w = await this.#run.open(name);
      await w.begin('read committed', this.#run.writeSettings);
    }
    this.#writers.set(name, w);
    return w;
  }

  /** `ctx.query` of an onException hook: SQL in the chunk's transaction on `db`. */
  readonly #hookQuery: ExceptionContext['query'] = async (db, text, values) => {
    const run = this.#run;
    if (!run.plan.databases.some((x) => x.name === db)) {
      throw new PgferryError('UNKNOWN_DATABASE', `onException ctx.query: database "${db}" is not part of sync "${run.sync}".`, { sync: run.sync, database: db });
    }
    if (run.isForeign(db)) {
      throw new PgferryError('CONFIG_INVALID', `onException ctx.query: database "${db}" is not PostgreSQL; ctx.query runs SQL on PostgreSQL databases only.`, { sync: run.sync, database: db });
    }
    const w = await this.#writer(db);
    // The hook's writes are the application's: captured and sent like any other change, with
    // no origin (not the one a previous apply statement set).
    await w.setLocal(APPLIED_BY_SETTING, '');
    await w.setLocal(ORIGIN_SETTING, '');
    try {
      return (await w.query(text, values)).rows;
    } finally {
      await w.setLocal(APPLIED_BY_SETTING, run.sync);
    }
  };

  /**
   * Fills the receiver's staging table of `t` with this chunk's rows for it: from every source
   * but the receiver itself (and but the source of a whole copy made into it), and the rows a
   * resolver merged (with the table's first chunk). Late deletes need only the gone rows.
   * Returns the counts per source when every source's rows arrived by COPY alone and every
   * one has a row at its source, as stagedCounts would find them; else undefined.
   */
  async #stage(d: Session, t: RunTable, steps: ReadonlySet<Step>): Promise<StagedCounts | undefined> {
    const run = this.#run;
    const here = t.receivers.get(d.name)!;
    await createStaging(d, here, t.temp, t.columns);
    const goneOnly = steps.size === 1 && steps.has('delete-late');
    // A whole copy brought the first source's rows; its changes are in the copy (unless a
    // TRUNCATE elsewhere empties the table again, which only changed rows survive).
    const skip = t.copyInto.has(d.name) && t.truncatedOn.size === 0 ? run.sources[0] : undefined;
    let staged = 0;
    let counts: StagedCounts | undefined = new Map();
    for (const [name, read] of run.reads) {
      if (name === d.name || name === skip || (t.counts.get(name) ?? 0) === 0) continue;
      const { rows, gone } = await stageRows(read.session, d, t.info, t.temp, t.columns, this.#plan.range, goneOnly, rowFilter(t));
      staged += rows;
      // A gone row may or may not be on the receiver: only stagedCounts can tell.
      if (gone > 0) counts = undefined;
      else if (rows > 0) counts?.set(name, { present: rows, absent: 0 });
    }
    if (!goneOnly && (await transformStagedRows(run, d, t))) counts = undefined;
    // With statistics the planner joins a large staging table by hash, not row by row.
    await d.analyzeTemp(t.temp.staging, staged);
    if (!goneOnly && (this.#plan.range?.from ?? 0) === 0 && t.merged.length > 0) {
      await stageObjects(d, here, t.temp, t.columns, t.merged, run.sync);
      counts = undefined;
    }
    if (run.plan.config.cascade) {
      await dropOwnOrigin(d, t.temp);
      counts = undefined;
    }
    return counts;
  }

  /** The run's first chunk: tables emptied children first (whole copies, TRUNCATEs), whole copies made parents first. */
  async #emptyAndCopy(d: Session): Promise<void> {
    const run = this.#run;
    const name = d.name;
    // Emptying and copying are this sync's writes, first written here: no origin.
    if (!run.reads.has(name) && run.tables.some((t) => t.copyInto.has(name) || t.truncatedOn.size > 0)) await d.setLocal(ORIGIN_SETTING, '');
    for (const t of [...run.tables].reverse()) {
      const here = t.receivers.get(name)!;
      if (t.copyInto.has(name)) await emptyTable(d, here);
      // A TRUNCATE on another source: the receiver keeps only the rows it changed itself since
      // the last run (a source's own changed keys are in its key table, in this same session).
      else if ([...t.truncatedOn].some((db) => db !== name)) await emptyExceptOwn(d, here, t.temp, run.reads.has(name) && (t.counts.get(name) ?? 0) > 0);
    }
    for (const t of run.tables) {
      // onetimecopy: the whole table at the first source's snapshot.
      if (t.copyInto.has(name)) t.result.upserted += await copyInto(run, run.firstRead.session, d, t);
    }
  }

  /** Stages this chunk's tables on receiver `name` and writes them in foreign-key order. */
  async applyTo(name: string): Promise<void> {
    const run = this.#run;
    if (run.isForeign(name)) return this.#applyForeign(name);
    const d = await this.#writer(name);
    const unread = run.tables.filter((t) => !t.receivers.has(name));
    const infos = await checkReceivers(d, unread, run.sources[0]!, this.#described.get(name));
    for (const [i, t] of unread.entries()) t.receivers.set(name, infos[i]!);
    if (this.#plan.first) await this.#emptyAndCopy(d);
    const work = [...this.#plan.work];
    const known = new Map<RunTable, KnownOrigins>();
    const streamed: (StagedCounts | undefined)[] = [];
    for (const [t, steps] of work) streamed.push(await this.#stage(d, t, steps));
    // Counted on the way in, when they can be: one round trip less for most runs.
    const counts = streamed.every((c) => c !== undefined)
      ? (streamed as StagedCounts[])
      : await stagedCounts(d, work.map(([t]) => ({ t: t.receivers.get(name)!, temp: t.temp })));
    for (const [i, [t, steps]] of work.entries()) {
      const origins = this.#count(t, counts[i]!, steps.has('upsert') || steps.has('delete'));
      if (origins) known.set(t, origins);
    }
    const dels = new Map<RunTable, Applied>(work.map(([t]) => [t, { count: 0, keys: [] }]));
    const deleted = (t: RunTable, r: Applied) => {
      const del = dels.get(t)!;
      del.count += r.count;
      del.keys.push(...r.keys);
    };
    for (const [t, steps] of [...work].reverse()) if (steps.has('delete')) deleted(t, await this.#delete(d, t, known.get(t), false));
    for (const [t, steps] of work) {
      if (steps.has('delete-early')) deleted(t, await this.#delete(d, t, known.get(t), true));
      if (steps.has('upsert')) this.#applied.push({ target: name, table: t.display, up: await this.#upsert(d, t, known.get(t), (r) => deleted(t, r)), del: dels.get(t)! });
    }
    for (const [t, steps] of [...work].reverse()) if (steps.has('delete-late')) deleted(t, await this.#delete(d, t, known.get(t), false));
    for (const [t, steps] of work) if (!steps.has('upsert')) this.#applied.push({ target: name, table: t.display, up: { count: 0, keys: [] }, del: dels.get(t)! });
  }

  /** A receiver of another kind: the chunk's rows read in batches and written in its own transaction (foreign.ts). */
  async #applyForeign(name: string): Promise<void> {
    const r = await this.#run.receiver(name);
    await r.begin();
    this.#foreign.push(r);
    const count = (src: string, t: RunTable, upserted: number, deleted: number) => {
      const id = `${src}\0${t.display}`;
      if (this.#counted.has(id)) return;
      this.#counted.add(id);
      t.result.upserted += upserted;
      t.result.deleted += deleted;
    };
    for (const a of await applyForeignChunk(this.#run, this.#plan, r, count, this.#wantKeys)) {
      this.#applied.push({ target: name, table: a.table, up: { count: a.count, keys: a.upserted }, del: { count: 0, keys: a.deleted } });
    }
  }

  /** On a source, rows changed there after the run read it keep their newer write. */
  #write(d: Session, t: RunTable, apply: (span?: StagedSpan) => Promise<Applied>): Promise<Applied> {
    return this.#run.reads.has(d.name) ? applyPastNewerWrites(d, t.temp, apply) : apply();
  }

  /** Deletes `t`'s gone rows; with `unreferencedOnly`, those that no row of the run's other tables references. */
  async #delete(d: Session, t: RunTable, known: KnownOrigins | undefined, unreferencedOnly: boolean): Promise<Applied> {
    if (known?.deletes.length === 0) return { count: 0, keys: [] };
    const here = t.receivers.get(d.name)!;
    const children = unreferencedOnly ? this.#referencing(t, d.name) : undefined;
    return withExceptionHook(
      this.#run,
      t,
      d,
      this.#hookQuery,
      (attempt) => this.#write(d, t, (span) => applyDeletes(d, here, t.temp, this.#wantKeys, attempt ? undefined : known?.deletes, span, children)),
      () => this.#stage(d, t, new Set(['delete'])),
    );
  }

  async #upsert(d: Session, t: RunTable, known: KnownOrigins | undefined, deleted: (r: Applied) => void): Promise<Applied> {
    const here = t.receivers.get(d.name)!;
    return withExceptionHook(
      this.#run,
      t,
      d,
      this.#hookQuery,
      async (attempt) => {
        if (attempt > 0) {
          // Re-staged after a hook: keys that are gone now are deleted first.
          deleted(await this.#write(d, t, (span) => applyDeletes(d, here, t.temp, this.#wantKeys, undefined, span)));
          return this.#write(d, t, (span) => applyUpserts(d, here, t.temp, t.columns, this.#wantKeys, undefined, span));
        }
        const k = known?.upserts;
        return k && k.origins.length === 0 ? { count: 0, keys: [] } : this.#write(d, t, (span) => applyUpserts(d, here, t.temp, t.columns, this.#wantKeys, k, span));
      },
      () => this.#stage(d, t, new Set(['upsert'])),
    );
  }

  /** The run's tables that reference `t` on receiver `name`, with their foreign keys onto it. */
  #referencing(t: RunTable, name: string): ReferencingTable[] {
    const out: ReferencingTable[] = [];
    for (const o of this.#run.tables) {
      if (o === t) continue;
      const child = o.receivers.get(name)!;
      for (const fk of child.foreignKeys) if (fk.table === t.display) out.push({ table: child, fk });
    }
    return out;
  }

  /**
   * Adds the staged rows of `t` to the run result (once per source and table in a chunk) and,
   * without cascade, returns the origins of its deletes and upserts (each staged row's origin
   * is then the source it came from).
   */
  #count(t: RunTable, counts: StagedCounts, intoResult: boolean): KnownOrigins | undefined {
    for (const [src, n] of counts) {
      const id = `${src}\0${t.display}`;
      if (!intoResult || this.#counted.has(id)) continue;
      this.#counted.add(id);
      if (src === this.#run.sync) continue; // merged rows are counted at commit
      t.result.upserted += n.present;
      t.result.deleted += n.absent;
    }
    if (this.#run.plan.config.cascade) return undefined;
    const from = [...counts.entries()];
    return {
      deletes: from.filter(([, n]) => n.absent > 0).map(([src]) => src),
      upserts: { origins: from.filter(([, n]) => n.present > 0).map(([src]) => src), present: new Map(from.map(([src, n]) => [src, n.present])) },
    };
  }

  /**
   * Commits every database written (receivers, and any a hook wrote to), each only past its
   * fence (no newer run wrote there), then reports the rows.
   */
  async commit(): Promise<void> {
    const run = this.#run;
    const targets = [...this.#writers].filter(([name]) => !run.reads.has(name)).map(([, w]) => w);
    // Every fence is passed before anything commits. A lone target passes its fence with its
    // COMMIT, in one round trip (the others' fence rows stay locked meanwhile).
    const lone = targets.length === 1 ? targets[0] : undefined;
    for (const [name, w] of this.#writers) {
      if (run.fenced.has(name) || w === lone) continue;
      await passFence(w, run.deps.schema, run.sync, run.generation);
      // A source's read transaction keeps the fence row locked until the run commits it.
      if (run.reads.has(name)) run.fenced.add(name);
    }
    for (const r of this.#foreign) await r.fence(run.sync, run.generation);
    for (const w of targets) await (w === lone ? commitPastFence(w, run.deps.schema, run.sync, run.generation) : w.commit());
    for (const r of this.#foreign) await r.commit();
    // Give the connections back now: a run of many chunks must not hold one per chunk.
    for (const w of targets) await w.close();
    for (const a of this.#applied) {
      if (a.up.count === 0 && a.del.count === 0) continue;
      run.deps.emit('rows:applied', { sync: run.sync, target: a.target, table: a.table, upserted: a.up.keys, deleted: a.del.keys });
    }
  }
}
