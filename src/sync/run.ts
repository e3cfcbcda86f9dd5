/**
 * One run of one sync, end to end: read the changed keys on every source at a snapshot,
 * settle conflicts, stage and apply the winning rows on every receiving database, commit the
 * receivers, then move the sources' watermarks. A failure anywhere rolls back every write of
 * the run and leaves the watermarks (so the pending changes) where they were.
 */
import createDebug from 'debug';
import {
  applyDeletes,
  applyUpserts,
  checkReceiver,
  createStaging,
  emptyExceptOwn,
  dropOwnOrigin,
  stageObjects,
  stageRows,
  stagedCounts,
  stagedKeys,
  stagingTable,
  type Applied,
} from '../apply/applier.js';
import { binaryCompatible, copyTable, emptyTable, estimateRows, isEmpty } from '../apply/fullcopy.js';
import { readSequence, winningSequence, writeSequence } from '../apply/sequences.js';
import { APPLIED_BY_SETTING } from '../capture/install.js';
import { copiedColumns, orderByDependencies, requireTable, type TableInfo } from '../catalog/tables.js';
import { currentRow, dropKeys, findConflicts } from '../conflict/detect.js';
import { decide, strategyFor } from '../conflict/strategies.js';
import type { Database } from '../db/database.js';
import { Session } from '../db/session.js';
import { advanceWatermark, collectKeys, copyKeyTable, indexKeyTable, dropKeysBefore, lastTruncate, openSource, pruneDeltas, type SourceRead } from '../delta/reader.js';
import { PgferryError, isPgferryError, isTransientDbError } from '../errors.js';
import type { Emit } from '../events.js';
import { displayName, ident } from '../sql/ident.js';
import type { ExceptionContext, Row, RowKey, RunReason, RunResult, TableResult } from '../types.js';
import { namesWithRole, type SyncPlan } from './plan.js';

const debug = createDebug('pgferry:run');

export interface RunDeps {
  dbs: ReadonlyMap<string, Database>;
  schema: string;
  emit: Emit;
  /** Aborting it destroys the run's connections: everything rolls back, the run rejects STOPPED. */
  signal?: AbortSignal;
  /** Runs housekeeping after the run (stop() waits for it); without it, none is done. */
  background?: (task: () => Promise<void>) => void;
}

interface TableState {
  /** Position in dependency order; names its temporary tables. */
  index: number;
  info: TableInfo;
  display: string;
  columns: string[];
  /** Changed keys per source (after conflicts were settled). */
  counts: Map<string, number>;
  /** Highest key number in any source's key table (chunks cover 1..span). */
  span: number;
  /** The newest TRUNCATE among the sources, when one happened since the last run. */
  truncate: { db: string; micros: number } | null;
  /** Rows merged by a resolver, written to every database. */
  merged: Row[];
  result: TableResult;
}

const MAX_EXCEPTION_RETRIES = 3;

/** Runs the sync once. Resolves when every receiver and every watermark committed. */
export async function runSync(plan: SyncPlan, deps: RunDeps, runId: string, reason: RunReason): Promise<RunResult> {
  const startedAt = new Date();
  const t0 = performance.now();
  const sync = plan.name;
  const sources = namesWithRole(plan, 'source');
  // With one source, the targets receive; with several, every source receives too.
  const receivers = namesWithRole(plan, ...(sources.length > 1 ? (['source', 'target'] as const) : (['target'] as const)));
  const fullcopies = namesWithRole(plan, 'fullcopy');
  const order = plan.databases.map((d) => d.name);
  const open: Session[] = [];
  const stopped = () =>
    new PgferryError('STOPPED', `Sync "${sync}": the run was stopped by stop() before it finished; nothing of it was applied.`, { sync });
  const openSession = async (name: string): Promise<Session> => {
    if (deps.signal?.aborted) throw stopped();
    const s = await Session.open(deps.dbs.get(name)!);
    open.push(s);
    return s;
  };
  const onAbort = () => {
    for (const s of open) s.destroy();
  };
  deps.signal?.addEventListener('abort', onAbort);

  try {
    // 1. Read side: one REPEATABLE READ transaction per source, at its snapshot.
    const firstSession = await openSession(sources[0]!);
    await firstSession.begin('repeatable read');
    const infos: TableInfo[] = [];
    for (const rel of plan.relations) infos.push(await requireTable(firstSession.client, rel, firstSession.name));
    const incremental = receivers.length > 0;
    const tableInfos = infos.filter((t) => t.kind === 'table');
    const reads = new Map<string, SourceRead>();
    for (const name of sources) {
      const session = name === sources[0] ? firstSession : await openSession(name);
      reads.set(name, await openSource(session, deps.schema, sync, incremental ? tableInfos : [], name !== sources[0]));
    }
    if (incremental) for (const t of tableInfos) if (t.key.length === 0) throw noKey(t, firstSession.name);
    const first = reads.get(sources[0]!)!;
    const tables: TableState[] = tableInfos.map((info) => ({
      index: 0,
      info,
      display: displayName(info),
      columns: copiedColumns(info),
      counts: new Map(),
      span: 0,
      merged: [],
      truncate: null,
      result: { upserted: 0, deleted: 0, conflicts: 0 },
    }));
    const ordered = orderByDependencies(tables.map((t) => Object.assign(t, { name: t.info.name, schema: t.info.schema, references: t.info.references })));
    ordered.forEach((t, i) => (t.index = i));

    // 2. Which receivers get a whole copy of which tables this run (onetimecopy).
    const copyInto = new Map<string, Set<number>>();
    if (!plan.state.onetimecopyDone && plan.config.onetimecopy !== 'never') {
      for (const name of namesWithRole(plan, 'target')) {
        const set = new Set<number>();
        if (plan.config.onetimecopy === 'always') {
          for (const t of ordered) set.add(t.index);
        } else {
          const probe = await openSession(name);
          for (const t of ordered) if (await isEmpty(probe, t.info)) set.add(t.index);
          await probe.close();
        }
        copyInto.set(name, set);
      }
    }

    // 3. Changed keys per table and source; TRUNCATEs; conflicts.
    let total = 0;
    if (incremental) {
      for (const t of ordered) {
        let winner: { db: string; micros: number } | null = null;
        for (const [name, read] of reads) {
          const n = await collectKeys(read, deps.schema, sync, t.info, t.index, plan.config.cascade);
          t.counts.set(name, n);
          t.span = Math.max(t.span, n);
          const tr = await lastTruncate(read, deps.schema, sync, t.info, plan.config.cascade);
          if (tr && (!winner || tr.micros > winner.micros)) winner = { db: name, micros: tr.micros };
        }
        if (winner) {
          // Only changes made after the newest TRUNCATE survive it.
          t.truncate = winner;
          for (const [name, read] of reads) t.counts.set(name, await dropKeysBefore(read, t.index, winner.micros));
        }
        for (const [name, n] of t.counts) if (n > plan.config.chunkSize) await indexKeyTable(reads.get(name)!, t.index);
        for (const n of t.counts.values()) total += n;
        if (t.truncate) total++;
      }
      if (sources.length > 1) {
        for (const t of ordered) await settleConflicts(plan, deps, reads, t, t.index, order);
      }
    }

    // 4. Apply, in chunks of at most chunkSize keys per table and source.
    const chunkSize = plan.config.chunkSize;
    const chunks = Math.max(1, ...ordered.map((t) => Math.ceil(t.span / chunkSize)));
    const hasMerged = ordered.some((t) => t.merged.length > 0);
    const copies = [...copyInto.values()].some((s) => s.size > 0);
    if (incremental && (total > 0 || hasMerged || copies)) {
      const checked = new Set<string>();
      for (let c = 0; c < chunks; c++) {
        const range = chunks > 1 ? { from: c * chunkSize, to: (c + 1) * chunkSize } : undefined;
        await applyChunk(plan, deps, reads, ordered, receivers, c === 0, range, checked, openSession, copyInto);
      }
    }

    // 5. Full copies to 'fullcopy' databases: one transaction per table (per run when tables
    //    reference each other, so foreign keys hold).
    for (const name of fullcopies) {
      await fullCopyTo(plan, deps, first.session, name, ordered, openSession);
    }

    // 6. Move the watermarks: the changes read are delivered.
    if (incremental) {
      for (const read of reads.values()) {
        await advanceWatermark(read, deps.schema, sync);
      }
    }
    for (const read of reads.values()) await read.session.commit();
    plan.state.onetimecopyDone = true;
    if (incremental && deps.background) {
      // Deltas every sync has delivered are deleted after the run, off its critical path:
      // delta tables stay small in steady state.
      const dbs = [...reads.keys()].map((name) => deps.dbs.get(name)!);
      const infos = ordered.map((t) => t.info);
      deps.background(async () => {
        for (const db of dbs) {
          const s = await Session.open(db);
          try {
            for (const info of infos) {
              const n = await pruneDeltas(s, deps.schema, info);
              if (n > 0) debug('%s: pruned %d deltas of %s', db.name, n, displayName(info));
            }
          } finally {
            await s.close();
          }
        }
      });
    }

    // 7. Sequences (not transactional): the furthest value wins everywhere.
    const sequences: Record<string, string> = {};
    for (const q of infos.filter((t) => t.kind === 'sequence')) {
      sequences[displayName(q)] = await syncSequence(plan, q, openSession);
    }

    const result: RunResult = {
      sync,
      runId,
      reason,
      status: total > 0 || hasMerged || copies || fullcopies.length > 0 ? 'ok' : 'empty',
      startedAt,
      durationMs: Math.round(performance.now() - t0),
      chunks: incremental && (total > 0 || hasMerged || copies) ? chunks : 0,
      tables: Object.fromEntries(ordered.map((t) => [t.display, t.result])),
      totals: ordered.reduce(
        (a, t) => ({ upserted: a.upserted + t.result.upserted, deleted: a.deleted + t.result.deleted, conflicts: a.conflicts + t.result.conflicts }),
        { upserted: 0, deleted: 0, conflicts: 0 },
      ),
      ...(Object.keys(sequences).length > 0 && { sequences }),
    };
    debug('%s run %s: %s in %dms', sync, runId, result.status, result.durationMs);
    return result;
  } catch (err) {
    throw deps.signal?.aborted ? stopped() : asRunError(err, sync);
  } finally {
    deps.signal?.removeEventListener('abort', onAbort);
    await Promise.all(open.map((s) => s.close()));
  }
}

/** Sets a sequence on every database of the sync to the sources' furthest value. */
async function syncSequence(plan: SyncPlan, q: TableInfo, openSession: (name: string) => Promise<Session>): Promise<string> {
  const sessions = new Map<string, Session>();
  for (const d of plan.databases) sessions.set(d.name, await openSession(d.name));
  const states = [];
  for (const name of namesWithRole(plan, 'source')) states.push(await readSequence(sessions.get(name)!, q));
  const want = winningSequence(states);
  for (const s of sessions.values()) await writeSequence(s, q, want);
  for (const s of sessions.values()) await s.close();
  return want.lastValue.toString();
}

/** Full copy of every table into one 'fullcopy' database, from the first source's snapshot. */
async function fullCopyTo(
  plan: SyncPlan,
  deps: RunDeps,
  source: Session,
  name: string,
  tables: TableState[],
  openSession: (name: string) => Promise<Session>,
): Promise<void> {
  const linked = tables.some((t) => t.info.references.some((r) => tables.some((o) => o.display === r && o !== t)));
  let w: Session | null = null;
  for (const t of tables) {
    if (!w) {
      w = await openSession(name);
      await w.begin('read committed', { [APPLIED_BY_SETTING]: plan.name });
    }
    await checkReceiver(w, t.info, t.columns, source.name);
    t.result.upserted += await copyWhole(plan, deps, source, w, t);
    if (!linked) {
      await w.commit();
      await w.close();
      w = null;
    }
  }
  if (w) {
    await w.commit();
    await w.close();
  }
}

/** Empties `t` on the receiver and copies every row into it, reporting progress. */
async function copyWhole(plan: SyncPlan, deps: RunDeps, source: Session, receiver: Session, t: TableState): Promise<number> {
  await emptyTable(receiver, t.info);
  const binary = await binaryCompatible(source, receiver, t.info, t.columns);
  const wants = deps.emit.wants('copy:progress');
  const totalEstimate = wants ? await estimateRows(source, t.info) : -1;
  return copyTable(source, receiver, t.info, t.columns, {
    binary,
    ...(wants && {
      progress: {
        db: receiver.db,
        everyMs: 250,
        report: (p) => deps.emit('copy:progress', { sync: plan.name, table: t.display, target: receiver.name, rows: p.rows, totalEstimate, done: p.done }),
      },
    }),
  });
}

function noKey(t: TableInfo, database: string): PgferryError {
  return new PgferryError(
    'NO_PRIMARY_KEY',
    `Table ${displayName(t)} on database "${database}" has no primary key and no unique index on NOT NULL columns, so changes to it cannot be matched across databases. Add a primary key, or replicate it with the 'fullcopy' role.`,
    { database, table: displayName(t) },
  );
}

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

/** Settles the conflicts of table `i`; losers' keys leave their key tables. */
async function settleConflicts(plan: SyncPlan, deps: RunDeps, reads: Map<string, SourceRead>, t: TableState, i: number, order: string[]): Promise<void> {
  const busy = [...reads.entries()].filter(([name]) => (t.counts.get(name) ?? 0) > 0);
  if (busy.length < 2) return;
  const conflicts = await findConflicts(busy.map(([, r]) => r.session), t.info, i);
  if (conflicts.length === 0) return;
  const strategy = strategyFor(plan.config.conflictStrategy, t.display);
  const drop = new Map<string, string[]>(busy.map(([name]) => [name, []]));
  for (const c of conflicts) {
    const decision = decide(strategy, c.contenders, order);
    const contenders = c.contenders.map((x) => x.db);
    let winner: string | null = null;
    let resolution: 'winner' | 'merged' | 'skip' = 'winner';
    if (decision.kind === 'abort') {
      throw new PgferryError(
        'CONFLICT',
        `Sync "${plan.name}": ${conflicts.length} conflict(s) in ${t.display}, e.g. key ${JSON.stringify(c.key)} changed on ${contenders.join(' and ')}; conflictStrategy is 'abort', so nothing was applied. Settle the rows by hand or choose another strategy.`,
        { sync: plan.name, table: t.display },
      );
    } else if (decision.kind === 'winner') {
      winner = decision.db;
    } else if (decision.kind === 'skip') {
      resolution = 'skip';
    } else {
      const rows: Record<string, Row | null> = {};
      const changedAt: Record<string, Date> = {};
      for (const x of c.contenders) {
        rows[x.db] = await currentRow(reads.get(x.db)!.session, t.info, c.key);
        changedAt[x.db] = x.changedAt;
      }
      const resolver = strategy as Exclude<typeof strategy, string | string[]>;
      const answer = await resolver({ sync: plan.name, table: t.display, key: c.key, rows, changedAt });
      if (answer === 'skip') {
        resolution = 'skip';
      } else if (answer && typeof answer === 'object' && 'winner' in answer && contenders.includes(answer.winner)) {
        winner = answer.winner;
      } else if (answer && typeof answer === 'object' && 'row' in answer && answer.row && typeof answer.row === 'object') {
        resolution = 'merged';
        t.merged.push({ ...answer.row, ...c.key });
      } else {
        throw new PgferryError(
          'CONFLICT',
          `Sync "${plan.name}": the conflict resolver for ${t.display} returned ${JSON.stringify(answer)} for key ${JSON.stringify(c.key)}; expected { winner: one of ${contenders.join(', ')} }, { row }, or 'skip'.`,
          { sync: plan.name, table: t.display },
        );
      }
    }
    for (const db of contenders) if (db !== winner) drop.get(db)!.push(c.keyText);
    t.result.conflicts++;
    deps.emit('conflict', { sync: plan.name, table: t.display, key: c.key, resolution, winner, databases: contenders });
  }
  for (const [db, keys] of drop) {
    if (keys.length === 0) continue;
    await dropKeys(reads.get(db)!.session, t.info, i, keys);
    t.counts.set(db, (t.counts.get(db) ?? 0) - keys.length);
  }
}

/** Applies one chunk to every receiver, each in its own transaction, committed together. */
async function applyChunk(
  plan: SyncPlan,
  deps: RunDeps,
  reads: Map<string, SourceRead>,
  tables: TableState[],
  receivers: string[],
  firstChunk: boolean,
  range: { from: number; to: number } | undefined,
  checked: Set<string>,
  openSession: (name: string) => Promise<Session>,
  copyInto: Map<string, Set<number>>,
): Promise<void> {
  const sync = plan.name;
  const wantKeys = deps.emit.wants('rows:applied');
  const writers = new Map<string, Session>();
  const writer = async (name: string): Promise<Session> => {
    let w = writers.get(name);
    if (!w) {
      w = await openSession(name);
      // Changes written here are tagged, so this sync never reads them back (no echo).
      await w.begin('read committed', { [APPLIED_BY_SETTING]: sync });
      writers.set(name, w);
    }
    return w;
  };
  const counted = new Set<string>();
  const applied: { target: string; table: string; up: Applied; del: Applied }[] = [];

  // Sources an onException hook wrote to: their rows are read from then on through the
  // run's write transaction there (which sees the hook's writes), not the read snapshot.
  const hookWrote = new Set<string>();
  const keysCopied = new Set<string>();
  const rowsFrom = async (name: string): Promise<Session> => {
    const read = reads.get(name)!;
    if (!hookWrote.has(name)) return read.session;
    const w = await writer(name);
    if (!keysCopied.has(name)) {
      for (const t of tables) await copyKeyTable(read.session, w, deps.schema, t.info, t.index);
      keysCopied.add(name);
    }
    return w;
  };
  const hookQuery = async (db: string, text: string, values?: unknown[]) => {
    if (!plan.databases.some((x) => x.name === db)) {
      throw new PgferryError('UNKNOWN_DATABASE', `onException ctx.query: database "${db}" is not part of sync "${plan.name}".`, { sync: plan.name, database: db });
    }
    const w = await writer(db);
    if (reads.has(db)) hookWrote.add(db);
    // The hook's writes are the application's: captured and sent like any other change.
    await w.setLocal(APPLIED_BY_SETTING, '');
    try {
      return (await w.query(text, values)).rows;
    } finally {
      await w.setLocal(APPLIED_BY_SETTING, sync);
    }
  };

  const stage = async (d: Session, t: TableState, i: number): Promise<void> => {
    await createStaging(d, t.info, i, t.columns);
    if (firstChunk && t.truncate && t.truncate.db !== d.name) {
      // A TRUNCATE won: the receiver keeps only the rows it changed itself since.
      const own = reads.get(d.name);
      if (own && (t.counts.get(d.name) ?? 0) > 0) await stageRows(own.session, d, t.info, i, t.columns);
      await emptyExceptOwn(d, t.info, i);
    }
    let staged = 0;
    for (const name of reads.keys()) {
      if (name === d.name || (t.counts.get(name) ?? 0) === 0) continue;
      staged += await stageRows(await rowsFrom(name), d, t.info, i, t.columns, range);
    }
    // With statistics the planner joins a large staging table by hash, not row by row.
    if (staged > 1000) await d.query(`ANALYZE pg_temp.${ident(stagingTable(i))}`);
    if (firstChunk && t.merged.length > 0) await stageObjects(d, t.info, i, t.columns, t.merged, sync);
    if (plan.config.cascade) await dropOwnOrigin(d, i);
  };

  const firstSource = reads.values().next().value!.session;
  for (const name of receivers) {
    const d = await writer(name);
    /** Per table: the origins of staged deletes and upserts, when known without a query. */
    const known = new Map<number, { deletes: string[]; upserts: string[] }>();
    const wholeCopies = copyInto.get(name) ?? new Set<number>();
    // Stage every table first, then delete children before parents, then upsert parents first.
    for (const [i, t] of tables.entries()) {
      const key = `${name}\0${t.display}`;
      if (!checked.has(key)) {
        await checkReceiver(d, t.info, t.columns, firstSource.name);
        checked.add(key);
      }
      if (wholeCopies.has(i)) {
        // onetimecopy: the whole table at the source's snapshot replaces the changes.
        if (firstChunk) t.result.upserted += await copyWhole(plan, deps, firstSource, d, t);
        await createStaging(d, t.info, i, t.columns);
        continue;
      }
      await stage(d, t, i);
      const counts = await stagedCounts(d, t.info, i);
      if (!plan.config.cascade) {
        // Without cascade every staged row's origin is the source it came from.
        const from = [...counts.entries()];
        known.set(i, {
          deletes: from.filter(([, n]) => n.absent > 0).map(([src]) => src),
          upserts: from.filter(([, n]) => n.present > 0).map(([src]) => src),
        });
      }
      for (const [src, n] of counts) {
        const id = `${src}\0${t.display}`;
        if (counted.has(id)) continue;
        counted.add(id);
        if (src === sync) continue; // merged rows are counted below
        t.result.upserted += n.present;
        t.result.deleted += n.absent;
      }
    }
    const dels = new Map<number, Applied>();
    for (let i = tables.length - 1; i >= 0; i--) {
      const k = known.get(i)?.deletes;
      dels.set(
        i,
        k && k.length === 0
          ? { count: 0, keys: [] }
          : await withExceptionHook(plan, tables[i]!, d, hookQuery, (attempt) => applyDeletes(d, tables[i]!.info, i, wantKeys, attempt ? undefined : k), () => stage(d, tables[i]!, i)),
      );
    }
    for (const [i, t] of tables.entries()) {
      const del = dels.get(i)!;
      const up = await withExceptionHook(
        plan,
        t,
        d,
        hookQuery,
        async (attempt) => {
          if (attempt > 0) {
            // Re-staged after a hook: keys that are gone now are deleted first.
            const again = await applyDeletes(d, t.info, i, wantKeys);
            del.count += again.count;
            del.keys.push(...again.keys);
            return applyUpserts(d, t.info, i, t.columns, wantKeys);
          }
          const k = known.get(i)?.upserts;
          return k && k.length === 0 ? { count: 0, keys: [] } : applyUpserts(d, t.info, i, t.columns, wantKeys, k);
        },
        () => stage(d, t, i),
      );
      applied.push({ target: name, table: t.display, up, del });
    }
  }
  if (firstChunk) for (const t of tables) t.result.upserted += t.merged.length;

  // Commit every database written (receivers, and any a hook wrote to).
  for (const w of writers.values()) await w.commit();
  // Give the connections back now: a run of many chunks must not hold one per chunk.
  for (const w of writers.values()) await w.close();
  for (const a of applied) {
    if (a.up.count === 0 && a.del.count === 0) continue;
    deps.emit('rows:applied', { sync, target: a.target, table: a.table, upserted: a.up.keys, deleted: a.del.keys });
  }
}

const CONSTRAINT_CLASS = '23';

/**
 * Runs one apply statement; when it fails on a constraint, rolls it back, lets the sync's
 * onException hook settle it, and tries again (re-staging the rows) when the hook asks.
 */
async function withExceptionHook(
  plan: SyncPlan,
  t: TableState,
  d: Session,
  query: ExceptionContext['query'],
  apply: (attempt: number) => Promise<Applied>,
  restage: () => Promise<void>,
): Promise<Applied> {
  const hook = plan.config.onException;
  for (let attempt = 0; ; attempt++) {
    if (hook) await d.query('SAVEPOINT pgferry_apply');
    try {
      const r = await apply(attempt);
      if (hook) await d.query('RELEASE SAVEPOINT pgferry_apply');
      return r;
    } catch (err) {
      const e = err as { code?: string; constraint?: string; message?: string; detail?: string };
      if (typeof e.code !== 'string' || !e.code.startsWith(CONSTRAINT_CLASS)) throw err;
      let keys: RowKey[] = [];
      if (hook) {
        await d.query('ROLLBACK TO SAVEPOINT pgferry_apply');
        keys = await stagedKeys(d, t.info, t.index);
        if (attempt < MAX_EXCEPTION_RETRIES) {
          const answer = await hook({
            sync: plan.name,
            table: t.display,
            database: d.name,
            error: err as Error,
            constraint: e.constraint,
            keys,
            query,
          });
          if (answer === 'retry') {
            await restage();
            continue;
          }
        }
      }
      throw new PgferryError(
        'CONSTRAINT_VIOLATION',
        `Sync "${plan.name}": applying ${t.display} on database "${d.name}" violates constraint "${e.constraint ?? '?'}": ${e.message ?? ''}${e.detail ? ` (${e.detail})` : ''}` +
          (keys.length ? `; keys being applied: ${JSON.stringify(keys.slice(0, 10))}${keys.length > 10 ? ` and ${keys.length - 10} more` : ''}` : '') +
          `. Nothing of this run was applied. Fix the rows, or settle it with an onException hook.`,
        { sync: plan.name, database: d.name, table: t.display, constraint: e.constraint, cause: err },
      );
    }
  }
}
