/**
 * Partial replication: a table listed as `{ table, columns?, where?, transform?, targets? }`.
 * Here are what a sync keeps of such an entry, the checks that need no server (roles, names)
 * and the ones made on each source before install() changes anything (columns exist, the
 * condition parses there). The run applies them in sync/partial.ts.
 */
import type pg from 'pg';
import type { TableInfo } from './catalog/tables.js';
import { PgferryError } from './errors.js';
import { displayName, qualified } from './sql/ident.js';
import type { Role, TableTransform } from './types.js';

/** What a table entry asks beyond its name. */
export interface TablePartial {
  /** Columns that travel besides the key (the key always travels). */
  columns?: string[];
  /** An SQL condition on the source row; rows that do not match are not sent. */
  where?: string;
  transform?: TableTransform;
  /** Receivers the transform applies to (all when not given). */
  targets?: string[];
}

/** A table entry as parsed by the config schema: a name, or a name with options. */
export type TableEntry = string | ({ table: string } & TablePartial);

function invalid(sync: string, path: string, message: string, table?: string): PgferryError {
  return new PgferryError('CONFIG_INVALID', `Invalid sync "${sync}": ${path}: ${message}`, {
    sync,
    ...(table && { table }),
    issues: [{ path, message }],
  });
}

/**
 * The options of each table entry that has some, by the table's display name, checked against
 * the sync's roles: none in a multi-master sync, `targets` naming receivers of the sync (and
 * only beside a transform). `names[i]` is entry i's parsed name.
 */
export function checkPartials(
  sync: string,
  entries: readonly TableEntry[],
  names: readonly string[],
  databases: Readonly<Record<string, Role>>,
): Map<string, TablePartial> {
  const out = new Map<string, TablePartial>();
  const sources = Object.values(databases).filter((r) => r === 'source').length;
  entries.forEach((e, i) => {
    if (typeof e === 'string') return;
    const { table: _name, ...partial } = e;
    const path = `tables.${i}`;
    for (const field of ['columns', 'where', 'transform'] as const) {
      if (partial[field] !== undefined && sources > 1) {
        throw invalid(sync, `${path}.${field}`, `not allowed in a multi-master sync (${sources} sources would disagree by design)`, names[i]);
      }
    }
    if (partial.targets) {
      if (!partial.transform) throw invalid(sync, `${path}.targets`, 'only limits a transform: give transform too', names[i]);
      const bad = partial.targets.filter((d) => databases[d] === undefined || databases[d] === 'source');
      if (bad.length) throw invalid(sync, `${path}.targets`, `${bad.map((b) => `"${b}"`).join(', ')} not a receiver (target or fullcopy) of the sync`, names[i]);
    }
    if (partial.columns && new Set(partial.columns).size !== partial.columns.length) {
      throw invalid(sync, `${path}.columns`, 'lists a column twice', names[i]);
    }
    if (Object.values(partial).some((v) => v !== undefined)) out.set(names[i]!, partial);
  });
  return out;
}

/**
 * Checks a table's options against the source's catalog, in `client`'s transaction (which the
 * check may abort: the caller rolls it back when this throws): every listed column exists, and
 * the condition is one boolean expression over the table's row there, under the pinned
 * settings. install() checks before it creates anything, and every run again before it reads.
 */
export async function checkPartialOnSource(client: pg.ClientBase, sync: string, index: number, t: TableInfo, partial: TablePartial, database: string): Promise<void> {
  const table = displayName(t);
  const missing = (partial.columns ?? []).filter((c) => !t.columns.some((x) => x.name === c));
  if (missing.length) {
    throw invalid(sync, `tables.${index}.columns`, `table ${table} on database "${database}" has no column ${missing.map((c) => `"${c}"`).join(', ')}`, table);
  }
  if (partial.where === undefined) return;
  try {
    // The extended protocol takes one statement only: a condition that would end the statement
    // and start another (`x); DROP ...`) is refused here instead of being run.
    const explain = { text: `EXPLAIN SELECT 1 FROM ONLY ${qualified(t)} WHERE ${condition(partial.where)}`, queryMode: 'extended' };
    await client.query(explain as pg.QueryConfig); // queryMode is missing from @types/pg
  } catch (err) {
    throw new PgferryError(
      'CONFIG_INVALID',
      `Invalid sync "${sync}": tables.${index}.where of ${table} is not a condition on its rows on database "${database}": ${(err as Error).message}`,
      { sync, table, database, issues: [{ path: `tables.${index}.where`, message: (err as Error).message }], cause: err },
    );
  }
}

/**
 * The user's condition as it goes into SQL: in parentheses, and with a line break before the
 * closing one, so that a trailing `--` comment cannot swallow it.
 */
export function condition(where: string): string {
  return `(${where}\n)`;
}
