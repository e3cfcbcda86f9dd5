/**
 * One chunk of a run on every receiver: stage each table's changed rows (COPY from the source
 * that changed them into a temporary table), then delete children before parents and upsert
 * parents before children, each receiver in its own transaction. An onException hook may
 * write through the chunk's transactions (see exception.ts).
 */
import {
  applyDeletes,
  applyUpserts,
  checkReceiver,
  createStaging,
  dropOwnOrigin,
  emptyExceptOwn,
  stageObjects,
  stageRows,
  stagedCounts,
  type Applied,
  type KeyRange,
} from '../apply/applier.js';
import { passFence } from '../apply/fence.js';
import { copyKeyTable } from '../delta/reader.js';
import type { Session } from '../db/session.js';
import { PgferryError } from '../errors.js';
import { ident } from '../sql/ident.js';
import { APPLIED_BY_SETTING } from '../sql/names.js';
import type { ExceptionContext } from '../types.js';
import type { Run, RunTable } from './context.js';
import { withExceptionHook } from './exception.js';
import { copyWhole } from './fullcopy.js';

/** Origins of a table's staged deletes and upserts, when known without a query. */
interface KnownOrigins {
  deletes: string[];
  upserts: string[];
}

export class Chunk {
  readonly #run: Run;
  readonly #first: boolean;
  readonly #range: KeyRange | undefined;
  readonly #wantKeys: boolean;
  /** The chunk's write transaction on each database it writes to. */
  readonly #writers = new Map<string, Session>();
  /** Sources and tables whose staged counts entered the run result (once per chunk). */
  readonly #counted = new Set<string>();
  readonly #applied: { target: string; table: string; up: Applied; del: Applied }[] = [];
  /**
   * Sources an onException hook wrote to: their rows are read from then on through the
   * chunk's write transaction there (which sees the hook's writes), not the read snapshot.
   */
  readonly #hookWrote = new Set<string>();
  readonly #keysCopied = new Set<string>();

  constructor(run: Run, first: boolean, range: KeyRange | undefined) {
    this.#run = run;
    this.#first = first;
    this.#range = range;
    this.#wantKeys = run.deps.emit.wants('rows:applied');
  }

  async #writer(name: string): Promise<Session> {
    let w = this.#writers.get(name);
    if (!w) {
      w = await this.#run.open(name);
      // Changes written here are tagged, so this sync never reads them back (no echo).
      await w.begin('read committed', { [APPLIED_BY_SETTING]: this.#run.sync });
      this.#writers.set(name, w);
    }
    return w;
  }

  /** Where to read a source's current rows: its snapshot, or its write transaction after a hook wrote there. */
  async #rowsFrom(name: string): Promise<Session> {
    const read = this.#run.reads.get(name)!;
    if (!this.#hookWrote.has(name)) return read.session;
    const w = await this.#writer(name);
    if (!this.#keysCopied.has(name)) {
      for (const t of this.#run.tables) await copyKeyTable(read.session, w, this.#run.deps.schema, t.info, t.temp);
      this.#keysCopied.add(name);
    }
    return w;
  }

  /** `ctx.query` of an onException hook: SQL in the chunk's transaction on `db`. */
  readonly #hookQuery: ExceptionContext['query'] = async (db, text, values) => {
    const run = this.#run;
    if (!run.plan.databases.some((x) => x.name === db)) {
      throw new PgferryError('UNKNOWN_DATABASE', `onException ctx.query: database "${db}" is not part of sync "${run.sync}".`, { sync: run.sync, database: db });
    }
    const w = await this.#writer(db);
    if (run.reads.has(db)) this.#hookWrote.add(db);
    // The hook's writes are the application's: captured and sent like any other change.
    await w.setLocal(APPLIED_BY_SETTING, '');
    try {
      return (await w.query(text, values)).rows;
    } finally {
      await w.setLocal(APPLIED_BY_SETTING, run.sync);
    }
  };

  /** Fills the receiver's staging table of `t` with this chunk's rows for it. */
  async #stage(d: Session, t: RunTable): Promise<void> {
    const run = this.#run;
    const here = t.receivers.get(d.name)!;
    await createStaging(d, here, t.temp, t.columns);
    if (this.#first && t.truncate && t.truncate.db !== d.name) {
      // A TRUNCATE won: the receiver keeps only the rows it changed itself since.
      const own = run.reads.get(d.name);
      if (own && (t.counts.get(d.name) ?? 0) > 0) await stageRows(own.session, d, t.info, t.temp, t.columns);
      await emptyExceptOwn(d, here, t.temp);
    }
    let staged = 0;
    for (const name of run.reads.keys()) {
      if (name === d.name || (t.counts.get(name) ?? 0) === 0) continue;
      staged += await stageRows(await this.#rowsFrom(name), d, t.info, t.temp, t.columns, this.#range);
    }
    // With statistics the planner joins a large staging table by hash, not row by row.
    if (staged > 1000) await d.query(`ANALYZE pg_temp.${ident(t.temp.staging)}`);
    if (this.#first && t.merged.length > 0) await stageObjects(d, here, t.temp, t.columns, t.merged, run.sync);
    if (run.plan.config.cascade) await dropOwnOrigin(d, t.temp);
  }

  /** Stages every table on receiver `name`, then deletes children first and upserts parents first. */
  async applyTo(name: string): Promise<void> {
    const run = this.#run;
    const d = await this.#writer(name);
    const known = new Map<RunTable, KnownOrigins>();
    for (const t of run.tables) {
      if (!t.receivers.has(name)) t.receivers.set(name, await checkReceiver(d, t.info, t.columns, run.sources[0]!));
      if (t.copyInto.has(name)) {
        // onetimecopy: the whole table at the source's snapshot replaces the changes.
        if (this.#first) t.result.upserted += await copyWhole(run, run.firstRead.session, d, t);
        await createStaging(d, t.receivers.get(name)!, t.temp, t.columns);
        continue;
      }
      await this.#stage(d, t);
      const origins = await this.#count(d, t);
      if (origins) known.set(t, origins);
    }
    const dels = new Map<RunTable, Applied>();
    for (const t of [...run.tables].reverse()) {
      const k = known.get(t)?.deletes;
      const here = t.receivers.get(name)!;
      dels.set(
        t,
        k && k.length === 0
          ? { count: 0, keys: [] }
          : await withExceptionHook(run, t, d, this.#hookQuery, (attempt) => applyDeletes(d, here, t.temp, this.#wantKeys, attempt ? undefined : k), () => this.#stage(d, t)),
      );
    }
    for (const t of run.tables) {
      const del = dels.get(t)!;
      const here = t.receivers.get(name)!;
      const up = await withExceptionHook(
        run,
        t,
        d,
        this.#hookQuery,
        async (attempt) => {
          if (attempt > 0) {
            // Re-staged after a hook: keys that are gone now are deleted first.
            const again = await applyDeletes(d, here, t.temp, this.#wantKeys);
            del.count += again.count;
            del.keys.push(...again.keys);
            return applyUpserts(d, here, t.temp, t.columns, this.#wantKeys);
          }
          const k = known.get(t)?.upserts;
          return k && k.length === 0 ? { count: 0, keys: [] } : applyUpserts(d, here, t.temp, t.columns, this.#wantKeys, k);
        },
        () => this.#stage(d, t),
      );
      this.#applied.push({ target: name, table: t.display, up, del });
    }
  }

  /**
   * Adds the staged rows of `t` to the run result (once per source and table in a chunk) and,
   * without cascade, returns the origins of its deletes and upserts (each staged row's origin
   * is then the source it came from).
   */
  async #count(d: Session, t: RunTable): Promise<KnownOrigins | undefined> {
    const counts = await stagedCounts(d, t.receivers.get(d.name)!, t.temp);
    for (const [src, n] of counts) {
      const id = `${src}\0${t.display}`;
      if (this.#counted.has(id)) continue;
      this.#counted.add(id);
      if (src === this.#run.sync) continue; // merged rows are counted at commit
      t.result.upserted += n.present;
      t.result.deleted += n.absent;
    }
    if (this.#run.plan.config.cascade) return undefined;
    const from = [...counts.entries()];
    return {
      deletes: from.filter(([, n]) => n.absent > 0).map(([src]) => src),
      upserts: from.filter(([, n]) => n.present > 0).map(([src]) => src),
    };
  }

  /**
   * Commits every database written (receivers, and any a hook wrote to), each only past its
   * fence (no newer run wrote there), then reports the rows.
   */
  async commit(): Promise<void> {
    const run = this.#run;
    if (this.#first) for (const t of run.tables) t.result.upserted += t.merged.length;
    for (const w of this.#writers.values()) await passFence(w, run.deps.schema, run.sync, run.generation);
    for (const w of this.#writers.values()) await w.commit();
    // Give the connections back now: a run of many chunks must not hold one per chunk.
    for (const w of this.#writers.values()) await w.close();
    for (const a of this.#applied) {
      if (a.up.count === 0 && a.del.count === 0) continue;
      run.deps.emit('rows:applied', { sync: run.sync, target: a.target, table: a.table, upserted: a.up.keys, deleted: a.del.keys });
    }
  }
}
