/**
 * The state of one run of one sync, shared by its phases: the plan and what the run needs from
 * the replicator, who it is (run id, reason, start time), the sessions it opened, the sources
 * it reads, and the tables it moves with what it learns about each.
 */
import type { TableInfo } from '../catalog/tables.js';
import type { Database } from '../db/database.js';
import { Session } from '../db/session.js';
import type { Generation } from '../apply/fence.js';
import type { ReadScope, SourceRead } from '../delta/reader.js';
import { PgferryError, isPgferryError, isTransientDbError } from '../errors.js';
import type { Emit } from '../events.js';
import type { TablePartial } from '../partial.js';
import { namesWithRole, type SyncPlan } from '../plan.js';
import { PgReceiver } from '../receivers/postgres.js';
import type { Receiver, ReceiverFactory } from '../receivers/receiver.js';
import { displayName } from '../sql/ident.js';
import { APPLIED_BY_SETTING, ORIGIN_SETTING, type TempNames } from '../sql/names.js';
import type { ConflictRecord, Row, RunReason, RunResult, TableResult } from '../types.js';

export interface RunDeps {
  dbs: ReadonlyMap<string, Database>;
  /** Receiving databases that are not PostgreSQL (SQLite, MySQL, Redis), by name. */
  foreign?: ReadonlyMap<string, ReceiverFactory>;
  schema: string;
  emit: Emit;
  /** Aborting it destroys the run's connections: everything rolls back, the run rejects STOPPED. */
  signal?: AbortSignal;
  /** Runs housekeeping after the run (stop() waits for it); without it, none is done. */
  background?: (task: () => Promise<void>) => void;
  /** Keeps settled conflicts with their rows (after the run committed); without it, no rows are read for history. */
  recordConflicts?: (records: ConflictRecord[]) => void;
}

/** What is known of a run from the moment it is launched, whether it succeeds or fails. */
export interface RunContext {
  runId: string;
  reason: RunReason;
  startedAt: Date;
  /** A kick asked for a one-time copy in this run, whatever was copied before. */
  onetimecopy?: 'always' | 'ifEmpty';
}

/** How long an early target transaction still being opened when its run ended may take to give its session back. */
const LINGER_MS = 5_000;

/** A target's write transaction, begun, with its catalog's descriptions of the sync's tables (null: missing). */
export interface PreparedTarget {
  session: Session;
  infos: ReadonlyMap<string, TableInfo | null>;
}

/** One table of the run and what the phases learn about it. */
export interface RunTable {
  info: TableInfo;
  /** `schema.table`, unquoted: how results and events name it. */
  display: string;
  /** Columns that travel (stored generated columns are computed by each database; `partial.columns` narrows them). */
  columns: string[];
  /** What the sync's table entry asks beyond the name: columns, a row filter, a transform. */
  partial?: TablePartial;
  /** Its temporary tables on sources (changed keys) and receivers (staged rows). */
  temp: TempNames;
  /** Changed keys per source (after TRUNCATEs and conflicts were settled). */
  counts: Map<string, number>;
  /** Highest key number in any source's key table (chunks cover 1..span). */
  span: number;
  /** Sources where the table was truncated since the last run. */
  truncatedOn: Set<string>;
  /** Rows merged by a resolver, written to every database. */
  merged: Row[];
  /** Receivers that get the whole table this run (onetimecopy) instead of its changes. */
  copyInto: Set<string>;
  /** The table as each receiver's catalog describes it, once checked there. */
  receivers: Map<string, TableInfo>;
  result: TableResult;
}

export class Run {
  readonly plan: SyncPlan;
  readonly deps: RunDeps;
  readonly runId: string;
  readonly reason: RunReason;
  readonly startedAt: Date;
  readonly onetimecopy: 'always' | 'ifEmpty' | undefined;
  readonly #t0 = performance.now();
  readonly sources: string[];
  /** With one source, the targets receive; with several, every source receives too. */
  readonly receivers: string[];
  readonly fullcopies: string[];
  /** The sync's databases in configured order (ties in conflicts go to the first). */
  readonly order: string[];
  /** The read side: one REPEATABLE READ transaction per source, in `sources` order. */
  readonly reads = new Map<string, SourceRead>();
  /** Every table and sequence of the sync, as read on the first source. */
  relations: TableInfo[] = [];
  /** The tables, referenced tables before the tables that reference them. */
  tables: RunTable[] = [];
  /**
   * Larger for every later run of the sync (set in phase 1); receivers refuse writes of a run
   * older than one that already wrote there (see apply/fence).
   */
  generation: Generation = { value: 0n, origin: '' };
  /** Changed keys and TRUNCATEs read this run. */
  changes = 0;
  /** Chunks the changes were applied in (0 when nothing was applied). */
  chunks = 0;
  sequences: Record<string, string> = {};
  /** Sources whose read transaction already passed the run's fence (see apply/fence). */
  readonly fenced = new Set<string>();
  /** Housekeeping to start once the run has given its connections back. */
  readonly afterwards: (() => Promise<void>)[] = [];
  readonly #open: Session[] = [];
  /** Receivers of other kinds opened by the run (one connection each), by name. */
  readonly #foreign = new Map<string, Promise<Receiver>>();
  /** Receivers of other kinds whose tables were checked this run. */
  readonly checkedForeign = new Set<string>();
  /** Target transactions opened while the sources are read (see prepareTargets), until a chunk takes them. */
  readonly #prepared = new Map<string, Promise<PreparedTarget>>();
  /** Their sessions, not the run's until taken. */
  readonly #preparing = new Set<Session>();
  /** Those given back (releaseTargets), until they are. */
  readonly #released: Promise<void>[] = [];
  /** Early target transactions still connecting or being opened. */
  readonly #unsettled = new Set<Promise<PreparedTarget>>();
  #closed = false;

  constructor(plan: SyncPlan, deps: RunDeps, ctx: RunContext) {
    this.plan = plan;
    this.deps = deps;
    this.runId = ctx.runId;
    this.reason = ctx.reason;
    this.startedAt = ctx.startedAt;
    this.onetimecopy = ctx.onetimecopy;
    this.sources = namesWithRole(plan, 'source');
    // Sources first: a target's first copy then reads a source that already took in this
    // run's TRUNCATEs from the other sources.
    this.receivers = [...(this.sources.length > 1 ? this.sources : []), ...namesWithRole(plan, 'target')];
    this.fullcopies = namesWithRole(plan, 'fullcopy');
    this.order = plan.databases.map((d) => d.name);
    deps.signal?.addEventListener('abort', this.#onAbort);
  }

  get sync(): string {
    return this.plan.name;
  }

  /** Whether the run moves changes (to targets, or between sources). */
  get incremental(): boolean {
    return this.receivers.length > 0;
  }

  get scope(): ReadScope {
    return { schema: this.deps.schema, sync: this.sync, cascade: this.plan.config.cascade };
  }

  /** The first source's read (full copies and onetimecopy read from it). */
  get firstRead(): SourceRead {
    return this.reads.get(this.sources[0]!)!;
  }

  /** Whether some table of the run references another through a foreign key. */
  get linked(): boolean {
    return this.tables.some((t) => this.isReferenced(t));
  }

  /** Whether another table of the run references `t`. */
  isReferenced(t: RunTable): boolean {
    return this.tables.some((o) => o !== t && o.info.references.includes(t.display));
  }

  /** Whether anything reaches a receiver this run: changes, merged rows, or whole copies. */
  get hasChanges(): boolean {
    return this.changes > 0 || this.tables.some((t) => t.merged.length > 0 || t.copyInto.size > 0);
  }

  /** Opens a session on one of the sync's databases; it is closed (rolled back) with the run. */
  async open(name: string): Promise<Session> {
    if (this.deps.signal?.aborted) throw this.#stopped();
    const s = await Session.open(this.deps.dbs.get(name)!);
    // Stopped while the connection was being made: the abort could not reach this session.
    if (this.deps.signal?.aborted) {
      s.destroy();
      await s.close();
      throw this.#stopped();
    }
    this.#open.push(s);
    return s;
  }

  /**
   * Opens the write transaction of every PostgreSQL target while the sources are still being
   * read, so that its round trips (BEGIN, the catalog stamps) are off the path from a commit on
   * a source to the rows on the target. (The fence stays at commit: a run that lost its lock
   * and hangs must not hold up the newer one.) The first chunk takes them (takeTarget); what
   * no chunk took is given back after the apply phase (releaseTargets), so that a run still
   * needs one connection per database. Not for periodic checks, which find nothing most of
   * the time, nor for syncs that may copy whole tables first (that phase opens its own).
   */
  prepareTargets(): void {
    if (this.reason === 'check' || !this.incremental || (this.onetimecopy ?? this.plan.config.onetimecopy) !== 'never') return;
    const tables = this.plan.relations;
    for (const name of namesWithRole(this.plan, 'target')) {
      if (this.isForeign(name)) continue;
      const p = (async (): Promise<PreparedTarget> => {
        // Its own session until a chunk takes it: the run's close() never cuts in between its
        // statements; it stops here at the next step instead, and gives the session back.
        const session = await Session.open(this.deps.dbs.get(name)!);
        this.#preparing.add(session);
        try {
          const step = () => {
            if (this.#closed || this.deps.signal?.aborted) throw this.#stopped();
          };
          step();
          await session.begin('read committed', this.writeSettings);
          step();
          const infos = await session.db.catalog.read(session.client, tables);
          step();
          return { session, infos: new Map(tables.map((q, i) => [displayName(q), infos[i]!])) };
        } catch (err) {
          this.#preparing.delete(session);
          await session.close();
          throw err;
        }
      })();
      // Whoever takes it sees a failure; a run that never does must not leave it unhandled.
      p.catch(() => undefined);
      this.#prepared.set(name, p);
      this.#unsettled.add(p);
      const settled = () => void this.#unsettled.delete(p);
      p.then(settled, settled);
    }
  }

  /** The settings of a receiver's write transaction: its writes carry the sync (no echo) and, at first, the first source as origin. */
  get writeSettings(): Record<string, string> {
    return { [APPLIED_BY_SETTING]: this.sync, [ORIGIN_SETTING]: this.sources[0]! };
  }

  /**
   * The target transaction prepareTargets() opened on `name`, once (later chunks open their
   * own), now the run's like any session it opened; undefined when there is none, or it
   * failed or its connection was lost meanwhile (an idle-in-transaction timeout, say): the
   * caller opens one itself, which reports whatever is wrong.
   */
  async takeTarget(name: string): Promise<PreparedTarget | undefined> {
    const p = this.#prepared.get(name);
    this.#prepared.delete(name);
    const prepared = await p?.catch(() => undefined);
    if (!prepared) return undefined;
    this.#preparing.delete(prepared.session);
    if (!prepared.session.usable) {
      await prepared.session.close();
      return undefined;
    }
    this.#open.push(prepared.session);
    return prepared;
  }

  /**
   * Gives back the target transactions no chunk took (rolled back). Resolves once they are
   * back (never rejects); the run need not wait for it.
   */
  releaseTargets(): Promise<void> {
    const closing = [...this.#prepared.values()].map((p) =>
      p
        .then(
          (x) => {
            this.#preparing.delete(x.session);
            return x.session.close();
          },
          () => undefined,
        )
        .catch(() => undefined),
    );
    this.#prepared.clear();
    const released = Promise.all(closing).then(() => undefined);
    this.#released.push(released);
    return released;
  }

  /** Whether `name` is a receiver that is not PostgreSQL (its rows travel parsed: sync/foreign.ts). */
  isForeign(name: string): boolean {
    return this.deps.foreign?.has(name) ?? false;
  }

  /**
   * Receiver `name` through the interface every kind implements. A PostgreSQL receiver is a new
   * session of the run (give it back with release()); one of another kind is the run's
   * connection to it, kept to the end of the run (release() only rolls back).
   */
  async receiver(name: string): Promise<Receiver> {
    if (!this.isForeign(name)) return new PgReceiver(await this.open(name), this.deps.schema, this.sync);
    return this.#foreignReceiver(name);
  }

  /** Ends what a receiver of receiver() was doing: a PostgreSQL session closes, another kind rolls back. */
  async release(r: Receiver): Promise<void> {
    if (this.#foreign.has(r.name)) await r.rollback();
    else await r.close();
  }

  #foreignReceiver(name: string): Promise<Receiver> {
    if (this.deps.signal?.aborted) return Promise.reject(this.#stopped());
    let r = this.#foreign.get(name);
    if (!r) {
      r = this.deps.foreign!.get(name)!.open(this.sync);
      this.#foreign.set(name, r);
      // A failed open is thrown to whoever waits for it, and forgotten.
      r.catch(() => this.#foreign.delete(name));
    }
    return r;
  }

  readonly #onAbort = (): void => {
    // Sessions already closed went back to the pool (maybe to someone else): destroy() skips them.
    for (const s of [...this.#open, ...this.#preparing]) s.destroy();
    for (const r of this.#foreign.values()) r.then((x) => x.close(), () => undefined).catch(() => undefined);
  };

  #stopped(): PgferryError {
    return new PgferryError('STOPPED', `Sync "${this.sync}": the run was stopped by stop() before it finished; nothing of it was applied.`, { sync: this.sync });
  }

  result(): RunResult {
    const totals = { upserted: 0, deleted: 0, conflicts: 0 };
    for (const t of this.tables) {
      totals.upserted += t.result.upserted;
      totals.deleted += t.result.deleted;
      totals.conflicts += t.result.conflicts;
    }
    return {
      sync: this.sync,
      runId: this.runId,
      reason: this.reason,
      status: this.hasChanges || this.fullcopies.length > 0 ? 'ok' : 'empty',
      startedAt: this.startedAt,
      durationMs: Math.round(performance.now() - this.#t0),
      chunks: this.chunks,
      tables: Object.fromEntries(this.tables.map((t) => [t.display, t.result])),
      totals,
      ...(Object.keys(this.sequences).length > 0 && { sequences: this.sequences }),
    };
  }

  /** The error a failed run rejects with: STOPPED when stop() cut it short. */
  failure(err: unknown): PgferryError {
    return this.deps.signal?.aborted ? this.#stopped() : asRunError(err, this.sync);
  }

  /** Rolls back and returns every session still open. */
  async close(): Promise<void> {
    this.deps.signal?.removeEventListener('abort', this.#onAbort);
    const first = !this.#closed;
    this.#closed = true;
    // Early target transactions still being opened end at their next step and give their
    // sessions back; stop() waits for that with the run's other housekeeping, and a session
    // stuck longer (a target that stopped answering) is cut.
    void this.releaseTargets();
    if (first && this.#unsettled.size > 0) {
      const stuck = setTimeout(() => {
        for (const s of this.#preparing) s.destroy();
      }, LINGER_MS);
      stuck.unref();
      const released = Promise.all(this.#released);
      this.deps.background?.(() => released.then(() => clearTimeout(stuck)));
    }
    const foreign = [...this.#foreign.values()];
    this.#foreign.clear();
    await Promise.all([
      ...this.#open.map((s) => s.close()),
      ...foreign.map((r) => r.then((x) => x.close(), () => undefined).catch(() => undefined)),
    ]);
  }
}

/** A PgferryError naming the sync; other errors become RUN_FAILED with their SQLSTATE. */
export function asRunError(err: unknown, sync: string): PgferryError {
  if (isPgferryError(err)) {
    if (err.sync === undefined) Object.defineProperty(err, 'sync', { value: sync, enumerable: true });
    return err;
  }
  const e = err as { message?: string; code?: string };
  return new PgferryError('RUN_FAILED', `Sync "${sync}" failed: ${e?.message ?? String(err)}${e?.code ? ` (SQLSTATE ${e.code})` : ''}`, {
    sync,
    cause: err,
    transient: isTransientDbError(err),
  });
}
