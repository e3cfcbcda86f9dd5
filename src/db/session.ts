import type pg from 'pg';
import { isConnectionError } from '../errors.js';
import type { Database } from './database.js';

/** One checked-out connection used for one transaction of a run. */
export class Session {
  readonly db: Database;
  readonly client: pg.PoolClient;
  #broken: Error | undefined;
  #inTx = false;
  #closed = false;
  #settings = new Map<string, string>();

  private constructor(db: Database, client: pg.PoolClient) {
    this.db = db;
    this.client = client;
  }

  static async open(db: Database): Promise<Session> {
    const s = new Session(db, await db.connect());
    // A checked-out connection that dies emits 'error' on the client: note it (the query in
    // flight fails on its own) instead of letting it crash the host process.
    s.client.on('error', s.#onError);
    return s;
  }

  readonly #onError = (err: Error): void => {
    this.#broken = err;
  };

  get name(): string {
    return this.db.name;
  }

  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>> {
    try {
      return await this.client.query<R>(text, values);
    } catch (err) {
      this.noteError(err);
      throw this.db.wrap(err);
    }
  }

  /** Marks the connection unusable after a connection-level failure (it is destroyed on release). */
  noteError(err: unknown): void {
    if (isConnectionError(err) || (err as { code?: string })?.code === 'COPY_ABORTED') this.#broken = err as Error;
  }

  markBroken(err: Error): void {
    this.#broken = err;
  }

  /**
   * Begins a transaction (one round trip) with fixed output settings, so text forms of keys
   * and times do not depend on the server, and optional transaction-local `settings`.
   */
  async begin(isolation: 'read committed' | 'repeatable read' = 'read committed', settings: Record<string, string> = {}): Promise<void> {
    const extra = Object.entries(settings).map(([k, v]) => `SELECT pg_catalog.set_config(${literal(k)}, ${literal(v)}, true);`);
    await this.query(
      `BEGIN ISOLATION LEVEL ${isolation === 'repeatable read' ? 'REPEATABLE READ' : 'READ COMMITTED'};
       SET LOCAL standard_conforming_strings = on; SET LOCAL TimeZone = 'UTC'; SET LOCAL extra_float_digits = 3;
       SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL IntervalStyle = 'postgres';
       SET LOCAL work_mem = '64MB'; ${extra.join(' ')}`,
    );
    this.#inTx = true;
    this.#settings = new Map(Object.entries(settings));
  }

  /** Sets a transaction-local setting, skipping the round trip when it already has that value. */
  async setLocal(name: string, value: string): Promise<void> {
    if (this.#settings.get(name) === value) return;
    await this.query(`SELECT pg_catalog.set_config($1, $2, true)`, [name, value]);
    this.#settings.set(name, value);
  }

  async commit(): Promise<void> {
    await this.query('COMMIT');
    this.#inTx = false;
    this.#settings.clear();
  }

  async rollback(): Promise<void> {
    if (!this.#inTx || this.#broken) return;
    this.#inTx = false;
    try {
      await this.client.query('ROLLBACK');
    } catch (err) {
      this.#broken = err as Error;
    }
  }

  /** Cuts the connection (its transaction rolls back on the server). */
  destroy(): void {
    this.#broken = new Error('destroyed');
    (this.client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
  }

  /** Rolls back what is open and returns the connection (destroyed when broken). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.rollback();
    this.client.removeListener('error', this.#onError);
    this.client.release(this.#broken ?? (this.#inTx ? new Error('transaction still open') : undefined));
  }
}

/** A SQL string literal, for sessions with standard_conforming_strings on (set by begin()). */
export function literal(s: string): string {
  if (s.includes('\0')) throw new Error('NUL byte in a literal');
  return `'${s.replace(/'/g, "''")}'`;
}
