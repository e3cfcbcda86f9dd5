import type pg from 'pg';
import { isConnectionError } from '../errors.js';
import type { Database } from './database.js';

/** One checked-out connection used for one transaction of a run. */
export class Session {
  readonly db: Database;
  readonly client: pg.PoolClient;
  #broken: Error | undefined;
  #inTx = false;

  private constructor(db: Database, client: pg.PoolClient) {
    this.db = db;
    this.client = client;
  }

  static async open(db: Database): Promise<Session> {
    return new Session(db, await db.connect());
  }

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

  async begin(isolation: 'read committed' | 'repeatable read' = 'read committed'): Promise<void> {
    await this.query(`BEGIN ISOLATION LEVEL ${isolation === 'repeatable read' ? 'REPEATABLE READ' : 'READ COMMITTED'}`);
    this.#inTx = true;
    // Text output of keys and times must not depend on the server's settings.
    await this.query(`SET LOCAL TimeZone = 'UTC'; SET LOCAL extra_float_digits = 3; SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL IntervalStyle = 'postgres'; SET LOCAL standard_conforming_strings = on`);
  }

  async commit(): Promise<void> {
    await this.query('COMMIT');
    this.#inTx = false;
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
    await this.rollback();
    this.client.release(this.#broken ?? (this.#inTx ? new Error('transaction still open') : undefined));
  }
}
