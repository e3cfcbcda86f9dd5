/**
 * MySQL and MariaDB receivers (mysql2, an optional peer dependency): table `schema.table` is
 * the table `table` in the database of the URI. One transaction per chunk; rows go as
 * multi-row `INSERT ... ON DUPLICATE KEY UPDATE` and `DELETE ... WHERE (key) IN (...)` of at
 * most 1000 rows (fewer for wide tables), as prepared statements with parameters. The session
 * runs in UTC, so TIMESTAMP columns hold the source's instants.
 */
import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import type { Generation } from '../apply/fence.js';
import { PgferryError } from '../errors.js';
import type { Row } from '../types.js';
import { batchRows, checkColumns, copyAsUpserts, columnOf, defaultOf, loadDriver, mayPass, redactUri, staleRun, tableMissing, writeError } from './common.js';
import type { Receiver, ReceiverCapabilities, ReceiverFactory, ReceiverTable, RowChanges, Written } from './receiver.js';
import { toMysql } from './values.js';

type Driver = typeof import('mysql2/promise');

const CAPABILITIES: ReceiverCapabilities = { roles: ['target', 'fullcopy'], staged: false, validate: false };

/** errno of refusals by a constraint: duplicate key, foreign keys, NOT NULL, CHECK (MariaDB, MySQL). */
const CONSTRAINT_ERRNO = new Set([1062, 1451, 1452, 1048, 4025, 3819]);
const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'PROTOCOL_CONNECTION_LOST', 'ER_CON_COUNT_ERROR']);
/** errno a later attempt can get past: lock wait timeout, deadlock. */
const TRANSIENT_ERRNO = new Set([1205, 1213]);
/** How long open() waits for a pooled connection (all of them busy with other runs). */
const ACQUIRE_TIMEOUT_MS = 60_000;
/** Text types whose collation decides whether two keys are one. */
const TEXT_TYPES = new Set(['char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext']);

/** Whether a text collation compares keys as PostgreSQL does: byte by byte, trailing spaces included. */
function keepsKeysApart(collation: string | null): boolean {
  return collation === null || collation === 'binary' || /_nopad_bin$/.test(collation) || collation === 'utf8mb4_0900_bin';
}

/** A name as MySQL reads it. */
export function mysqlIdent(name: string): string {
  return `\`${name.replace(/`/g, '``')}\``;
}

export async function mysqlFactory(database: string, uri: string, schema: string): Promise<ReceiverFactory> {
  const driver = await loadDriver('mysql', database, async () => defaultOf<Driver>(await import('mysql2/promise')));
  const { where, secrets } = redactUri(uri);
  // Made on first use, and again after close() (a replicator may run again after stop()).
  let made: Pool | null = null;
  const pool = (): Pool => {
    if (made) return made;
    made = driver.createPool({
      uri,
      connectionLimit: 4,
      connectTimeout: 10_000,
      // Batches of many sizes make many statements: keep few open (the server's limit is global).
      maxPreparedStatements: 64,
      charset: 'utf8mb4',
      timezone: 'Z',
      supportBigNumbers: true,
      bigNumberStrings: true,
      dateStrings: true,
    });
    // Errors of idle connections must not crash the host.
    (made as unknown as { on(e: string, f: (err: Error) => void): void }).on?.('error', () => undefined);
    return made;
  };
  // Failing to connect is retried, unless the server refused the login or the database (wrong password, say).
  const fail = (err: unknown) => writeError('mysql', database, undefined, err, secrets, { connection: true, transient: CONNECTION_CODES.has((err as { code?: string }).code ?? '') });
  return {
    kind: 'mysql',
    where,
    open: async () => {
      let conn: PoolConnection;
      try {
        conn = await acquire(pool(), database, secrets);
      } catch (err) {
        throw fail(err);
      }
      const r = new MysqlReceiver(database, conn, schema, secrets);
      try {
        await r.prepare();
      } catch (err) {
        conn.destroy();
        throw err;
      }
      return r;
    },
    ping: async () => {
      try {
        await pool().query('SELECT 1');
      } catch (err) {
        throw fail(err);
      }
    },
    close: async () => {
      const p = made;
      made = null;
      await p?.end();
    },
  };
}

/** A pooled connection, or CONNECTION_FAILED (transient) when none is free within ACQUIRE_TIMEOUT_MS (mysql2 pools wait without a limit). */
async function acquire(pool: Pool, database: string, secrets: readonly string[]): Promise<PoolConnection> {
  let timer: NodeJS.Timeout | undefined;
  let late = false;
  const getting = pool.getConnection();
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      late = true;
      reject(new Error(`no pooled connection was free within ${ACQUIRE_TIMEOUT_MS / 1000} s`));
    }, ACQUIRE_TIMEOUT_MS);
  });
  // A connection that comes after the wait ended goes back to the pool.
  getting.then((c) => late && c.release(), () => undefined);
  try {
    return await Promise.race([getting, timeout]);
  } catch (err) {
    if (late) throw writeError('mysql', database, undefined, err, secrets, { connection: true });
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

class MysqlReceiver implements Receiver {
  readonly kind = 'mysql' as const;
  readonly capabilities = CAPABILITIES;
  readonly name: string;
  readonly #conn: PoolConnection;
  readonly #fences: string;
  readonly #fenceTable: string;
  readonly #secrets: string[];
  #inTx = false;

  constructor(name: string, conn: PoolConnection, schema: string, secrets: string[]) {
    this.name = name;
    this.#conn = conn;
    this.#fenceTable = `${schema}_fences`;
    this.#fences = mysqlIdent(this.#fenceTable);
    this.#secrets = secrets;
  }

  async #q<T = ResultSetHeader>(t: ReceiverTable | undefined, sql: string, values: unknown[] = []): Promise<T> {
    try {
      // Statements without values need no prepared statement (and some, like START TRANSACTION, cannot be one).
      const [r] = values.length === 0 ? await this.#conn.query(sql) : await this.#conn.execute(sql, values as never[]);
      return r as T;
    } catch (err) {
      const e = err as { errno?: number; code?: string; message?: string };
      const name = /CONSTRAINT [`'](.+?)[`'] failed|Check constraint '(.+?)' is violated/.exec(e.message ?? '');
      throw writeError('mysql', this.name, t, err, this.#secrets, {
        constraint: CONSTRAINT_ERRNO.has(e.errno ?? 0),
        connection: CONNECTION_CODES.has(e.code ?? ''),
        ...(TRANSIENT_ERRNO.has(e.errno ?? 0) && { transient: true }),
        ...(name && { name: name[1] ?? name[2]! }),
      });
    }
  }

  /**
   * Session settings (UTC; strict mode, so a value that does not fit is refused, never cut), and
   * the fence table when it is missing (DDL commits in MySQL: made before any transaction; a
   * user without CREATE works once it exists).
   */
  async prepare(): Promise<void> {
    await this.#q(undefined, `SET time_zone = '+00:00', sql_mode = TRIM(BOTH ',' FROM CONCAT(@@SESSION.sql_mode, ',STRICT_ALL_TABLES'))`);
    const exists = await this.#q<RowDataPacket[]>(undefined, 'SELECT 1 AS x FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?', [this.#fenceTable]);
    if (exists.length > 0) return;
    await this.#q(
      undefined,
      `CREATE TABLE IF NOT EXISTS ${this.#fences} (sync VARCHAR(63) NOT NULL PRIMARY KEY, generation VARCHAR(40) NOT NULL, origin VARCHAR(200) NOT NULL, updated_at DATETIME(6) NOT NULL) DEFAULT CHARSET = utf8mb4`,
    );
  }

  async check(tables: readonly ReceiverTable[]): Promise<void> {
    const [db] = await this.#q<RowDataPacket[]>(undefined, 'SELECT DATABASE() AS db, VERSION() AS version');
    if (!db?.db) {
      throw writeError('mysql', this.name, undefined, new Error('the URI names no database (mysql://user@host:3306/DATABASE)'), this.#secrets, {});
    }
    const mariadb = /mariadb/i.test(String(db.version));
    for (const t of tables) {
      const cols = await this.#q<RowDataPacket[]>(
        t,
        `SELECT column_name AS name, data_type AS type, character_set_name AS charset, collation_name AS coll
           FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ?`,
        [t.name],
      );
      if (cols.length === 0) throw tableMissing('mysql', this.name, t, t.name);
      const idx = await this.#q<RowDataPacket[]>(
        t,
        `SELECT index_name AS ix, column_name AS col FROM information_schema.statistics
          WHERE table_schema = DATABASE() AND table_name = ? AND non_unique = 0 ORDER BY index_name = 'PRIMARY' DESC, index_name, seq_in_index`,
        [t.name],
      );
      const keys = new Map<string, string[]>();
      for (const x of idx) keys.set(String(x.ix), [...(keys.get(String(x.ix)) ?? []), String(x.col)]);
      const want = [...t.key].sort().join('\0');
      const key = [...keys.values()].find((k) => [...k].sort().join('\0') === want) ?? keys.get('PRIMARY') ?? [];
      checkColumns('mysql', this.name, t, t.name, new Set(cols.map((c) => String(c.name))), key);
      // ON DUPLICATE KEY UPDATE matches on every unique index, not only on the key (one that holds every key column is harmless).
      const other = [...keys].find(([, k]) => !t.key.every((c) => k.includes(c)));
      if (other) {
        throw new PgferryError(
          'SCHEMA_MISMATCH',
          `The mysql table "${t.name}" on database "${this.name}" has the unique index "${other[0]}" (${other[1].join(', ')}) besides its key (${t.key.join(', ')}): INSERT ... ON DUPLICATE KEY UPDATE would update a row that index matches instead of inserting the row of the key. Drop that index or make it non-unique, and run again; pending changes are kept.`,
          { database: this.name, table: t.display, column: other[1][0] },
        );
      }
      for (const name of t.key) {
        const c = cols.find((x) => String(x.name) === name)!;
        const coll = c.coll === null ? null : String(c.coll);
        if (!TEXT_TYPES.has(String(c.type).toLowerCase()) || keepsKeysApart(coll)) continue;
        const use = mariadb ? `${String(c.charset ?? 'utf8mb4')}_nopad_bin` : 'utf8mb4_0900_bin';
        throw new PgferryError(
          'SCHEMA_MISMATCH',
          `The mysql table "${t.name}" on database "${this.name}" has key column "${name}" (${String(c.type)}) with collation ${coll}, which can make keys that differ in PostgreSQL one ('a' and 'a ', or 'abc' and 'ABC'). Give it the collation ${use} (binary, NO PAD), or make it VARBINARY, and run again; pending changes are kept.`,
          { database: this.name, table: t.display, column: name },
        );
      }
    }
  }

  async begin(): Promise<void> {
    await this.#q(undefined, 'START TRANSACTION');
    this.#inTx = true;
  }

  async apply(t: ReceiverTable, changes: RowChanges): Promise<Written> {
    const out: Written = { upserted: 0, deleted: 0 };
    const table = mysqlIdent(t.name);
    const keyCols = t.key.map((k) => columnOf(t, k));
    const per = batchRows(keyCols.length);
    for (let i = 0; i < changes.deletes.length; i += per) {
      const part = changes.deletes.slice(i, i + per);
      const tuple = keyCols.length === 1 ? '?' : `(${keyCols.map(() => '?').join(', ')})`;
      const lhs = keyCols.length === 1 ? mysqlIdent(keyCols[0]!.name) : `(${keyCols.map((c) => mysqlIdent(c.name)).join(', ')})`;
      const r = await this.#q(t, `DELETE FROM ${table} WHERE ${lhs} IN (${part.map(() => tuple).join(', ')})`, part.flatMap((k) => keyCols.map((c) => toMysql(k[c.name], c))));
      out.deleted += r.affectedRows;
    }
    const keys = new Set(t.key);
    const rest = t.columns.filter((c) => !keys.has(c.name));
    const update = (rest.length ? rest : keyCols.slice(0, 1)).map((c) => `${mysqlIdent(c.name)} = VALUES(${mysqlIdent(c.name)})`).join(', ');
    const cols = t.columns.map((c) => mysqlIdent(c.name)).join(', ');
    const row = `(${t.columns.map(() => '?').join(', ')})`;
    const rows = batchRows(t.columns.length);
    for (let i = 0; i < changes.upserts.length; i += rows) {
      const part = changes.upserts.slice(i, i + rows);
      await this.#q(t, `INSERT INTO ${table} (${cols}) VALUES ${part.map(() => row).join(', ')} ON DUPLICATE KEY UPDATE ${update}`, part.flatMap((r) => t.columns.map((c) => toMysql(r[c.name], c))));
      out.upserted += part.length;
    }
    return out;
  }

  async truncate(t: ReceiverTable): Promise<void> {
    // DELETE, not TRUNCATE: TRUNCATE commits the transaction in MySQL.
    await this.#q(t, `DELETE FROM ${mysqlIdent(t.name)}`);
  }

  fullCopy(t: ReceiverTable, batches: AsyncIterable<Row[]>, onBatch?: (rows: number) => void): Promise<number> {
    return copyAsUpserts(this, t, batches, onBatch);
  }

  async isEmpty(t: ReceiverTable): Promise<boolean> {
    return (await this.#q<RowDataPacket[]>(t, `SELECT 1 FROM ${mysqlIdent(t.name)} LIMIT 1`)).length === 0;
  }

  async delivered(sync: string): Promise<boolean> {
    return (await this.#q<RowDataPacket[]>(undefined, `SELECT 1 FROM ${this.#fences} WHERE sync = ?`, [sync])).length > 0;
  }

  async fence(sync: string, generation: Generation): Promise<void> {
    const [recorded] = await this.#q<RowDataPacket[]>(undefined, `SELECT generation, origin FROM ${this.#fences} WHERE sync = ? FOR UPDATE`, [sync]);
    if (!mayPass(recorded as { generation: string; origin: string } | undefined, generation)) throw staleRun(sync, this.name, generation);
    await this.#q(
      undefined,
      `INSERT INTO ${this.#fences} (sync, generation, origin, updated_at) VALUES (?, ?, ?, UTC_TIMESTAMP(6))
       ON DUPLICATE KEY UPDATE generation = VALUES(generation), origin = VALUES(origin), updated_at = VALUES(updated_at)`,
      [sync, generation.value.toString(), generation.origin],
    );
  }

  async commit(): Promise<void> {
    await this.#q(undefined, 'COMMIT');
    this.#inTx = false;
  }

  async rollback(): Promise<void> {
    if (!this.#inTx) return;
    this.#inTx = false;
    try {
      await this.#conn.query('ROLLBACK');
    } catch {
      // A connection that failed is destroyed below.
      this.#broken = true;
    }
  }

  #broken = false;

  async close(): Promise<void> {
    await this.rollback();
    if (this.#broken) this.#conn.destroy();
    else this.#conn.release();
  }
}
