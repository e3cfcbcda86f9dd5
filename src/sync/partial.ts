/**
 * Partial replication in a run: which columns of a table travel, the row filter as SQL, and
 * the transform a receiver's rows pass through (apply/transform.ts). Tables listed by name
 * alone take none of these paths: their rows go COPY to COPY, never parsed.
 */
import { copiedColumns, type TableInfo } from '../catalog/tables.js';
import { copyTransformed, transformStaged, type StagedTransform } from '../apply/transform.js';
import type { Session } from '../db/session.js';
import { PgferryError } from '../errors.js';
import { condition, type TablePartial } from '../partial.js';
import { displayName } from '../sql/ident.js';
import type { Run, RunTable } from './context.js';

/**
 * The columns of `info` that travel: with `partial.columns`, the key and those (in the table's
 * order); else every column but stored generated ones. A listed column missing on the source
 * fails with SCHEMA_MISMATCH naming it.
 */
export function travellingColumns(info: TableInfo, partial: TablePartial | undefined, database: string): string[] {
  const all = copiedColumns(info);
  if (!partial?.columns) return all;
  for (const c of partial.columns) {
    if (!info.columns.some((x) => x.name === c)) {
      throw new PgferryError('SCHEMA_MISMATCH', `Table ${displayName(info)} on database "${database}" has no column "${c}", which the sync lists in its columns. Add the column or remove it from the list.`, {
        database,
        table: displayName(info),
        column: c,
      });
    }
  }
  const wanted = new Set([...info.key, ...partial.columns]);
  return all.filter((c) => wanted.has(c));
}

/** The table's row filter as SQL (parenthesized), or undefined. */
export function rowFilter(t: RunTable): string | undefined {
  return t.partial?.where === undefined ? undefined : condition(t.partial.where);
}

/** The transform rows of `t` pass through on their way to receiver `target`, if any. */
export function transformFor(run: Run, t: RunTable, target: string): StagedTransform | undefined {
  const p = t.partial;
  if (!p?.transform || (p.targets && !p.targets.includes(target))) return undefined;
  return { fn: p.transform, ctx: { sync: run.sync, table: t.display, target } };
}

/** After staging `t` on receiver `d`: its present rows through the transform, when it has one there (then true). */
export async function transformStagedRows(run: Run, d: Session, t: RunTable): Promise<boolean> {
  const tr = transformFor(run, t, d.name);
  if (tr) await transformStaged(d, t.receivers.get(d.name)!, t.temp, t.columns, t.info.key, tr);
  return tr !== undefined;
}

/** A whole copy of `t` into `receiver` through its transform there; undefined when it has none (copy as usual). */
export async function copyThroughTransform(run: Run, source: Session, receiver: Session, t: RunTable): Promise<number | undefined> {
  const tr = transformFor(run, t, receiver.name);
  if (!tr) return undefined;
  return copyTransformed(source, receiver, t.info, t.receivers.get(receiver.name)!, t.temp, t.columns, rowFilter(t) ?? 'true', tr);
}
