/**
 * One chunk of a run on every receiver: stage each table's changed rows (COPY from the source
 * that changed them into a temporary table), then delete children before parents and upsert
 * parents before children. A target writes in a transaction of its own, committed with the
 * chunk. A source (multi-master) writes in its read transaction: it sees the snapshot the run
 * read there, so a row an application changed after it fails with a serialization error
 * (the run starts again and settles it as a conflict) instead of being overwritten, and a run
 * needs one connection per database. An onException hook may write through the chunk's
 * transactions (see exception.ts).
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
  type StagedSpan,
} from '../apply/applier.js';
import { passFence } from '../apply/fence.js';
import type { Session } from '../db/session.js';
import { PgferryError } from '../errors.js';
import { ident } from '../sql/ident.js';
import { APPLIED_BY_SETTING } from '../sql/names.js';
import type { ExceptionContext } from '../types.js';
import type { Run, RunTable } from './context.js';
import { withExceptionHook } from './exception.js';
import { applyPastNewerWrites } from './newer-writes.js';
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
  /** The chunk's write transaction on each database it writes to (a source's is its read transaction). */
  readonly #writers = new Map<string, Session>();
  /** Sources and tables whose staged counts entered the run result (once per chunk). */
  readonly #counted = new Set<string>();
  readonly #applied: { target: string; table: string; up: Applied; del: Applied }[] = [];

  constructor(run: Run, first: boolean, range: KeyRange | undefined) {
    this.#run = run;
    this.#first = first;
    this.#range = range;
    this.#wantKeys = run.deps.emit.wants('rows:applied');
  }

  async #writer(name: string): Promise<Session> {
    let w = this.#writers.get(name);
    if (w) return w;
    const read = this.#run.reads.get(name);
    if (read) {
      w = read.session;
      // Changes written here are tagged, so this sync never reads them back (no echo).
      await w.setLocal(APPLIED_BY_SETTING, this.#run.sync);
    } else {
      w = await this.#run.open(name);
      await w.begin('read committed', { [APPLIED_BY_SETTING]: this.#run.sync });
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
    const w = await this.#writer(db);
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
      // A TRUNCATE won: the receiver keeps only the rows it changed itself since (a source's
      // own changed keys are in its key table, in this same session).
      await emptyExceptOwn(d, here, t.temp, run.reads.has(d.name) && (t.counts.get(d.name) ?? 0) > 0);
    }
    let staged = 0;
    for (const [name, read] of run.reads) {
      if (name === d.name || (t.counts.get(name) ?? 0) === 0) continue;
      staged += await stageRows(read.session, d, t.info, t.temp, t.columns, this.#range);
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
    // On a source, rows changed there after the run read it keep their newer write.
    const write = (t: RunTable, apply: (span?: StagedSpan) => Promise<Applied>) =>
      run.reads.has(name) ? applyPastNewerWrites(d, t.temp, apply) : apply();
    const dels = new Map<RunTable, Applied>();
    for (const t of [...run.tables].reverse()) {
      const k = known.get(t)?.deletes;
      const here = t.receivers.get(name)!;
      dels.set(
        t,
        k && k.length === 0
          ? { count: 0, keys: [] }
          : await withExceptionHook(
              run,
              t,
              d,
              this.#hookQuery,
              (attempt) => write(t, (span) => applyDeletes(d, here, t.temp, this.#wantKeys, attempt ? undefined : k, span)),
              () => this.#stage(d, t),
            ),
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
            const again = await write(t, (span) => applyDeletes(d, here, t.temp, this.#wantKeys, undefined, span));
            del.count += again.count;
            del.keys.push(...again.keys);
            return write(t, (span) => applyUpserts(d, here, t.temp, t.columns, this.#wantKeys, undefined, span));
          }
          const k = known.get(t)?.upserts;
          return k && k.length === 0 ? { count: 0, keys: [] } : write(t, (span) => applyUpserts(d, here, t.temp, t.columns, this.#wantKeys, k, span));
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
    for (const [name, w] of this.#writers) {
      if (run.fenced.has(name)) continue;
      await passFence(w, run.deps.schema, run.sync, run.generation);
      // A source's read transaction keeps the fence row locked until the run commits it.
      if (run.reads.has(name)) run.fenced.add(name);
    }
    const targets = [...this.#writers].filter(([name]) => !run.reads.has(name)).map(([, w]) => w);
    for (const w of targets) await w.commit();
    // Give the connections back now: a run of many chunks must not hold one per chunk.
    for (const w of targets) await w.close();
    for (const a of this.#applied) {
      if (a.up.count === 0 && a.del.count === 0) continue;
      run.deps.emit('rows:applied', { sync: run.sync, target: a.target, table: a.table, upserted: a.up.keys, deleted: a.del.keys });
    }
  }
}
