/**
 * Phase 1, read: lock the sync on every source (runs of a sync never overlap, whichever
 * instance runs them), then open one REPEATABLE READ transaction per source (its snapshot is
 * what the run reads, and becomes the watermark), read the sync's tables from the first
 * source's catalog, check that capture is installed everywhere, and order the tables by their
 * foreign keys.
 */
import { orderByDependencies, type TableInfo } from '../catalog/tables.js';
import type { Generation } from '../apply/fence.js';
import { runLock, type LockKey } from '../db/locks.js';
import type { Session } from '../db/session.js';
import { openFirstSource, openSource, probeSql } from '../delta/reader.js';
import { GENERATION_COLUMNS, type Probe } from '../delta/open.js';
import { PgferryError } from '../errors.js';
import { displayName } from '../sql/ident.js';
import { checkPartialOnSource } from '../partial.js';
import { partialOf } from '../plan.js';
import { tempNames } from '../sql/names.js';
import type { Run, RunTable } from './context.js';
import { travellingColumns } from './partial.js';

export async function readSources(run: Run): Promise<void> {
  const key = runLock(run.deps.schema, run.sync);
  const firstName = run.sources[0]!;
  // The generation comes from the source locked first, in its read transaction's first round trip.
  const numbering = lockOrder(run.sources)[0]!;
  const probeFirst = probeSql(run.deps.schema, numbering === firstName);
  let sessions: Map<string, Session>;
  let probe: Probe | undefined;
  if (run.sources.length === 1) {
    // One source: its lock and its read transaction in one round trip.
    const only = await run.open(firstName);
    sessions = new Map([[firstName, only]]);
    [probe] = await only.lockAndBegin<Probe>(key, 'repeatable read', {}, probeFirst);
  } else {
    sessions = await lockSources(run.sources, key, (name) => run.open(name));
    [probe] = await sessions.get(firstName)!.begin<Probe>('repeatable read', {}, probeFirst);
  }
  const first = sessions.get(firstName)!;
  // The targets' write transactions open meanwhile.
  run.prepareTargets();
  const opened = await openFirstSource(first, run.deps.schema, run.sync, probe!, run.plan.relations, run.incremental);
  run.relations.push(...opened.infos);
  run.reads.set(firstName, opened.read);
  const tables = run.relations.filter((t) => t.kind === 'table');
  for (const name of run.sources.slice(1)) {
    run.reads.set(name, await openSource(sessions.get(name)!, run.deps.schema, run.sync, run.incremental ? tables : [], { generation: name === numbering }));
  }
  run.generation = run.reads.get(numbering)!.generation!;
  if (run.incremental) for (const t of tables) if (t.key.length === 0) throw noKey(t, first.name);
  run.tables = orderByDependencies(tables).map((info, i) => newRunTable(info, i, partialOf(run.plan, displayName(info)), first.name));
  await checkFilters(run, first);
}

/** Sources in the order every instance locks them (by name), so that two runs never deadlock. */
export function lockOrder(sources: readonly string[]): string[] {
  return [...sources].sort();
}

/**
 * Takes the sync's run lock (`key`) on every source, waiting for a run elsewhere to end, on
 * sessions from `open`. Outside any transaction: a snapshot taken before the wait would miss
 * what that run committed. validate({ repair }) serializes with runs through this too.
 */
export async function lockSources(sources: readonly string[], key: LockKey, open: (name: string) => Promise<Session>): Promise<Map<string, Session>> {
  const sessions = new Map<string, Session>();
  for (const name of lockOrder(sources)) {
    const s = await open(name);
    await s.lock(key);
    sessions.set(name, s);
  }
  return sessions;
}

/**
 * The run's generation: a transaction id of the first source in lock order, assigned after
 * the lock was taken. Every later run of the sync gets a larger one, and ids are never reused,
 * even when the run fails. Its origin names that server and database.
 */
export async function generation(session: Session): Promise<Generation> {
  const r = await session.query<{ g: string; origin: string }>(`SELECT ${GENERATION_COLUMNS}`);
  return { value: BigInt(r.rows[0]!.g), origin: r.rows[0]!.origin };
}

function newRunTable(info: TableInfo, position: number, partial: RunTable['partial'], database: string): RunTable {
  return {
    info,
    display: displayName(info),
    columns: travellingColumns(info, partial, database),
    ...(partial && { partial }),
    temp: tempNames(position),
    counts: new Map(),
    span: 0,
    truncatedOn: new Set(),
    merged: [],
    copyInto: new Set(),
    receivers: new Map(),
    result: { upserted: 0, deleted: 0, conflicts: 0 },
  };
}

/** Each row filter is one condition on its table's rows (see partial.ts), before any of it runs. */
async function checkFilters(run: Run, first: Session): Promise<void> {
  for (const t of run.tables) {
    if (t.partial?.where === undefined) continue;
    const index = run.plan.relations.findIndex((r) => displayName(r) === t.display);
    await checkPartialOnSource(first.client, run.sync, index, t.info, { where: t.partial.where }, first.name);
  }
}

function noKey(t: TableInfo, database: string): PgferryError {
  return new PgferryError(
    'NO_PRIMARY_KEY',
    `Table ${displayName(t)} on database "${database}" has no primary key and no unique index on NOT NULL columns, so changes to it cannot be matched across databases. Add a primary key, or replicate it with the 'fullcopy' role.`,
    { database, table: displayName(t) },
  );
}
