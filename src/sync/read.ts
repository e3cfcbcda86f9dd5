/**
 * Phase 1, read: open one REPEATABLE READ transaction per source (its snapshot is what the run
 * reads, and becomes the watermark), read the sync's tables from the first source's catalog,
 * check that capture is installed everywhere, and order the tables by their foreign keys.
 */
import { copiedColumns, orderByDependencies, requireTable, type TableInfo } from '../catalog/tables.js';
import { openSource } from '../delta/reader.js';
import { PgferryError } from '../errors.js';
import { displayName } from '../sql/ident.js';
import { tempNames } from '../sql/names.js';
import type { Run, RunTable } from './context.js';

export async function readSources(run: Run): Promise<void> {
  const [firstName] = run.sources;
  const first = await run.open(firstName!);
  await first.begin('repeatable read');
  for (const rel of run.plan.relations) run.relations.push(await requireTable(first.client, rel, first.name));
  const tables = run.relations.filter((t) => t.kind === 'table');
  for (const name of run.sources) {
    const session = name === firstName ? first : await run.open(name);
    run.reads.set(name, await openSource(session, run.deps.schema, run.sync, run.incremental ? tables : [], name !== firstName));
  }
  if (run.incremental) for (const t of tables) if (t.key.length === 0) throw noKey(t, first.name);
  run.tables = orderByDependencies(tables).map(newRunTable);
}

function newRunTable(info: TableInfo, position: number): RunTable {
  return {
    info,
    display: displayName(info),
    columns: copiedColumns(info),
    temp: tempNames(position),
    counts: new Map(),
    span: 0,
    truncate: null,
    merged: [],
    copyInto: new Set(),
    receivers: new Map(),
    result: { upserted: 0, deleted: 0, conflicts: 0 },
  };
}

function noKey(t: TableInfo, database: string): PgferryError {
  return new PgferryError(
    'NO_PRIMARY_KEY',
    `Table ${displayName(t)} on database "${database}" has no primary key and no unique index on NOT NULL columns, so changes to it cannot be matched across databases. Add a primary key, or replicate it with the 'fullcopy' role.`,
    { database, table: displayName(t) },
  );
}
