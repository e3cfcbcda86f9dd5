/**
 * SQLite receivers (better-sqlite3, an optional peer dependency): table `schema.table` is the
 * SQLite table `table`. One transaction per chunk (BEGIN IMMEDIATE: a second writer waits
 * BUSY_TIMEOUT_MS for the lock, then fails with a transient error), prepared statements run
 * row by row (SQLite has no round trips), an upsert by the key (`ON CONFLICT (key) DO
 * UPDATE`). The journal mode (WAL or not) is the user's. better-sqlite3 is synchronous: each statement holds the event loop while it runs.
 */
import type BetterSqlite3 from 'better-sqlite3';
import type { Generation } from '../apply/fence.js';
import type { Row } from '../types.js';
import { checkColumns, copyAsUpserts, columnOf, defaultOf, loadDriver, mayPass, staleRun, tableMissing, writeError } from './common.js';
import type { Receiver, ReceiverCapabilities, ReceiverFactory, ReceiverTable, RowChanges, Written } from './receiver.js';
import { toSqlite } from './values.js';

type Driver = typeof BetterSqlite3;
type Db = BetterSqlite3.Database;
type Statement = BetterSqlite3.Statement;

const CAPABILITIES: ReceiverCapabilities = { roles: ['target', 'fullcopy'], staged: false, validate: false };

/**
 * How long a statement waits for another writer's lock. better-sqlite3 waits synchronously,
 * holding the event loop: kept short, and a locked database is a transient error that
 * background runs retry with backoff.
 */
const BUSY_TIMEOUT_MS = 100;

/** A name as SQLite reads it. */
export function sqliteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export async function sqliteFactory(database: string, filename: string, schema: string): Promise<ReceiverFactory> {
  const Driver = await loadDriver('sqlite', database, async () => defaultOf<Driver>(await import('better-sqlite3')));
  return {
    kind: 'sqlite',
    where: filename,
    open: async () => new SqliteReceiver(database, new Driver(filename, { timeout: BUSY_TIMEOUT_MS }), schema),
    ping: async () => {
      const db = new Driver(filename, { timeout: BUSY_TIMEOUT_MS });
      db.close();
    },
    close: async () => undefined,
  };
}

class SqliteReceiver implements Receiver {
  readonly kind = 'sqlite' as const;
  readonly capabilities = CAPABILITIES;
  readonly name: string;
  readonly #db: Db;
  readonly #fences: string;
  readonly #statements = new Map<string, Statement>();

  constructor(name: string, db: Db, schema: string) {
    this.name = name;
    this.#db = db;
    this.#fences = sqliteIdent(`${schema}_fences`);
  }

  #run<T>(t: ReceiverTable | undefined, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      const code = String((err as { code?: string }).code ?? '');
      const name = /CHECK constraint failed: (\S+)/.exec((err as Error).message ?? '')?.[1];
      const busy = code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED');
      throw writeError('sqlite', this.name, t, err, [], { constraint: code.startsWith('SQLITE_CONSTRAINT'), ...(name && { name }), connection: code === 'SQLITE_CANTOPEN', ...(busy && { transient: true }) });
    }
  }

  #prepare(key: string, sql: string): Statement {
    let st = this.#statements.get(key);
    if (!st) this.#statements.set(key, (st = this.#db.prepare(sql)));
    return st;
  }

  async check(tables: readonly ReceiverTable[]): Promise<void> {
    for (const t of tables) {
      const cols = this.#run(t, () => this.#db.prepare('SELECT name, pk FROM pragma_table_info(?)').all(t.name) as { name: string; pk: number }[]);
      if (cols.length === 0) throw tableMissing('sqlite', this.name, t, t.name);
      const pk = cols.filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk).map((c) => c.name);
      const unique = this.#run(t, () =>
        this.#db
          .prepare(`SELECT group_concat(ii.name, char(0)) AS cols FROM pragma_index_list(?) il JOIN pragma_index_info(il.name) ii WHERE il."unique" = 1 AND il.partial = 0 GROUP BY il.name`)
          .all(t.name) as { cols: string }[],
      );
      const want = [...t.key].sort().join('\0');
      const key = unique.map((u) => u.cols.split('\0')).find((k) => [...k].sort().join('\0') === want) ?? pk;
      checkColumns('sqlite', this.name, t, t.name, new Set(cols.map((c) => c.name)), key);
    }
  }

  async begin(): Promise<void> {
    this.#run(undefined, () => this.#db.exec('BEGIN IMMEDIATE'));
  }

  async apply(t: ReceiverTable, changes: RowChanges): Promise<Written> {
    const out: Written = { upserted: 0, deleted: 0 };
    const keyCols = t.key.map((k) => columnOf(t, k));
    if (changes.deletes.length > 0) {
      const del = this.#prepare(`d\0${t.display}`, `DELETE FROM ${sqliteIdent(t.name)} WHERE ${t.key.map((k) => `${sqliteIdent(k)} = ?`).join(' AND ')}`);
      this.#run(t, () => {
        for (const k of changes.deletes) out.deleted += del.run(...keyCols.map((c) => toSqlite(k[c.name], c))).changes;
      });
    }
    if (changes.upserts.length > 0) {
      const up = this.#upsert(t);
      this.#run(t, () => {
        for (const r of changes.upserts) up.run(...t.columns.map((c) => toSqlite(r[c.name], c)));
      });
      out.upserted += changes.upserts.length;
    }
    return out;
  }

  #upsert(t: ReceiverTable): Statement {
    const keys = new Set(t.key);
    const rest = t.columns.filter((c) => !keys.has(c.name));
    const set = rest.length ? `DO UPDATE SET ${rest.map((c) => `${sqliteIdent(c.name)} = excluded.${sqliteIdent(c.name)}`).join(', ')}` : 'DO NOTHING';
    return this.#prepare(
      `u\0${t.display}`,
      `INSERT INTO ${sqliteIdent(t.name)} (${t.columns.map((c) => sqliteIdent(c.name)).join(', ')}) VALUES (${t.columns.map(() => '?').join(', ')})
       ON CONFLICT (${t.key.map(sqliteIdent).join(', ')}) ${set}`,
    );
  }

  async truncate(t: ReceiverTable): Promise<void> {
    this.#run(t, () => this.#db.prepare(`DELETE FROM ${sqliteIdent(t.name)}`).run());
  }

  fullCopy(t: ReceiverTable, batches: AsyncIterable<Row[]>, onBatch?: (rows: number) => void): Promise<number> {
    return copyAsUpserts(this, t, batches, onBatch);
  }

  async isEmpty(t: ReceiverTable): Promise<boolean> {
    return this.#run(t, () => this.#db.prepare(`SELECT 1 FROM ${sqliteIdent(t.name)} LIMIT 1`).get() === undefined);
  }

  #fenceTableExists(): boolean {
    return this.#db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`).get(this.#fences.slice(1, -1).replace(/""/g, '"')) !== undefined;
  }

  async delivered(sync: string): Promise<boolean> {
    return this.#run(undefined, () => this.#fenceTableExists() && this.#db.prepare(`SELECT 1 FROM ${this.#fences} WHERE sync = ?`).get(sync) !== undefined);
  }

  async fence(sync: string, generation: Generation): Promise<void> {
    this.#run(undefined, () => {
      this.#db.exec(`CREATE TABLE IF NOT EXISTS ${this.#fences} (sync TEXT PRIMARY KEY, generation TEXT NOT NULL, origin TEXT NOT NULL, updated_at TEXT NOT NULL)`);
      const recorded = this.#db.prepare(`SELECT generation, origin FROM ${this.#fences} WHERE sync = ?`).get(sync) as { generation: string; origin: string } | undefined;
      if (!mayPass(recorded, generation)) throw staleRun(sync, this.name, generation);
      this.#db
        .prepare(`INSERT INTO ${this.#fences} (sync, generation, origin, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (sync) DO UPDATE SET generation = excluded.generation, origin = excluded.origin, updated_at = excluded.updated_at`)
        .run(sync, generation.value.toString(), generation.origin, new Date().toISOString());
    });
  }

  async commit(): Promise<void> {
    this.#run(undefined, () => this.#db.exec('COMMIT'));
  }

  async rollback(): Promise<void> {
    try {
      if (this.#db.open && this.#db.inTransaction) this.#db.exec('ROLLBACK');
    } catch {
      /* the connection is closed next */
    }
  }

  async close(): Promise<void> {
    await this.rollback();
    this.#statements.clear();
    if (this.#db.open) this.#db.close();
  }
}
