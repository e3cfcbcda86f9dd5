/**
 * Table descriptions kept between runs. Reading a table's description (readTable) plans and
 * runs a large catalog query, several milliseconds each time; a run needs it for every table on
 * the first source and on every receiver. The cache keeps each description with a stamp: the
 * row versions (xmin) of the catalog rows it was read from (the table's pg_class and
 * pg_namespace rows, its columns, its indexes, its foreign keys and the tables they reference).
 * Any DDL that could change the description writes a new version of one of them, so one small
 * query for all of a run's tables tells which descriptions still hold; only the others are read
 * again. A failed run clears the cache (see sync/run.ts), in case a change slipped past.
 */
import type pg from 'pg';
import { displayName, type QualifiedName } from '../sql/ident.js';
import { readTable, tableNotFound, type TableInfo } from './tables.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

/**
 * The stamps of the relations named by two text[] parameters (schemas and names, e.g. '$1',
 * '$2'): a row (i, stamp) per relation that exists, i counting from 1. Other statements may
 * carry it as a subquery (the source's registry query does).
 */
export function stampsSql(schemas: string, names: string): string {
  return `SELECT q.i::int AS i,
         c.oid::text || ':' || c.xmin::text || ':' || n.xmin::text
      || '|' || coalesce((SELECT pg_catalog.string_agg(a.xmin::text, ',' ORDER BY a.attnum)
                            FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0), '')
      || '|' || coalesce((SELECT pg_catalog.string_agg(x.xmin::text || ':' || ic.xmin::text, ',' ORDER BY x.indexrelid)
                            FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class ic ON ic.oid = x.indexrelid
                           WHERE x.indrelid = c.oid), '')
      || '|' || coalesce((SELECT pg_catalog.string_agg(f.xmin::text || ':' || rc.xmin::text || ':' || rn.xmin::text, ',' ORDER BY f.oid)
                            FROM pg_catalog.pg_constraint f
                            JOIN pg_catalog.pg_class rc ON rc.oid = f.confrelid
                            JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace
                           WHERE f.conrelid = c.oid AND f.contype = 'f'), '') AS stamp
    FROM ROWS FROM (pg_catalog.unnest(${schemas}::text[]), pg_catalog.unnest(${names}::text[])) WITH ORDINALITY AS q(s, r, i)
    JOIN pg_catalog.pg_namespace n ON n.nspname = q.s
    JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = q.r AND c.relkind IN ('r', 'p', 'S')`;
}

export class CatalogCache {
  readonly #entries = new Map<string, { stamp: string; info: TableInfo }>();

  /**
   * The descriptions of `names`, in order (null where a table does not exist): one query for
   * the stamps, and readTable for each table whose stamp changed.
   */
  async read(db: Queryable, names: readonly QualifiedName[]): Promise<(TableInfo | null)[]> {
    if (names.length === 0) return [];
    const r = await db.query<{ i: number; stamp: string }>({
      name: 'pgferry.catalog-stamps',
      text: stampsSql('$1', '$2'),
      values: stampValues(names),
    });
    return this.resolve(db, names, r.rows);
  }

  /** Like read(), with the stamps already read (the rows of stampsSql over `names`). */
  async resolve(db: Queryable, names: readonly QualifiedName[], rows: readonly { i: number; stamp: string }[]): Promise<(TableInfo | null)[]> {
    const stamps = new Map(rows.map((x) => [x.i - 1, x.stamp]));
    const out: (TableInfo | null)[] = [];
    for (const [i, q] of names.entries()) {
      const key = displayName(q);
      const stamp = stamps.get(i);
      const hit = this.#entries.get(key);
      if (stamp === undefined) {
        this.#entries.delete(key);
        out.push(null);
      } else if (hit?.stamp === stamp) {
        out.push(hit.info);
      } else {
        const info = await readTable(db, q);
        if (info) this.#entries.set(key, { stamp, info });
        out.push(info);
      }
    }
    return out;
  }

  /** Like read(), for tables that must exist: TABLE_NOT_FOUND naming the first one missing. */
  async require(db: Queryable, names: readonly QualifiedName[], database: string, rows?: readonly { i: number; stamp: string }[]): Promise<TableInfo[]> {
    const infos = rows ? await this.resolve(db, names, rows) : await this.read(db, names);
    const missing = names.findIndex((_, i) => infos[i] === null);
    if (missing >= 0) throw tableNotFound(names[missing]!, database);
    return infos as TableInfo[];
  }

  clear(): void {
    this.#entries.clear();
  }
}

/** The two parameters of stampsSql for `names`. */
export function stampValues(names: readonly QualifiedName[]): [string[], string[]] {
  return [names.map((q) => q.schema), names.map((q) => q.name)];
}
