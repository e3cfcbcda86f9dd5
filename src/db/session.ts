import { createHash } from 'node:crypto';
import pg from 'pg';
import { isConnectionError } from '../errors.js';
import { escapeLiteral, ident } from '../sql/ident.js';
import type { Database } from './database.js';
import { lockArgs, lockArgsInline, lockValues, type LockKey } from './locks.js';
import { pinSql } from './settings.js';

/** One checked-out connection used for one transaction of a run. */
export class Session {
  readonly db: Database;
  readonly client: pg.PoolClient;
  #broken: Error | undefined;
  #inTx = false;
  #closed = false;
  /** Temporary tables created in the open transaction: name → definition. */
  #createdTemp = new Map<string, string>();
  /**
   * Temporary tables handed out in the open transaction, which may hold rows. The others are
   * empty: they delete their rows at every commit, and a rollback takes back what was written.
   */
  #filledTemp = new Set<string>();
  #settings = new Map<string, string>();
  /** Savepoints open in the transaction, each with the settings as they were when it was set. */
  #savepoints: { name: string; settings: Map<string, string> }[] = [];
  /** Session-level advisory locks held: released before the connection goes back to the pool. */
  #locks: LockKey[] = [];

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

  /** Not closed, and its connection not known to be lost or cut. */
  get usable(): boolean {
    return !this.#closed && !this.#broken;
  }

  /** Runs one statement; `types` overrides how result values are parsed. */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[], types?: pg.CustomTypesConfig): Promise<pg.QueryResult<R>> {
    return this.#send<R>({ text, ...(values && { values }), ...(types && { types }) });
  }

  /**
   * Runs one statement as a prepared statement of this connection (named by its text), so
   * that runs after the first few reuse its plan instead of planning it again. Only for
   * statements whose result columns never change (no `*` over a user's table).
   */
  async prepared<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    try {
      return await this.#send<R>({ name: `pgferry:${createHash('sha1').update(text).digest('hex').slice(0, 20)}`, text, values });
    } catch (err) {
      // The server lost or cannot reuse the statement (e.g. a DISCARD ALL by whoever owns the
      // pool): node-postgres would keep sending its name, so this connection is not reused.
      const code = (err as { cause?: { code?: string }; code?: string }).cause?.code ?? (err as { code?: string }).code;
      if (code === '26000' || code === '0A000') this.#broken = err as Error;
      throw err;
    }
  }

  async #send<R extends pg.QueryResultRow>(config: pg.QueryConfig): Promise<pg.QueryResult<R>> {
    try {
      return await this.client.query<R>(config);
    } catch (err) {
      this.noteError(err);
      // Where it happened, for whoever decides what to do about it (e.g. a deadlock on a source).
      if (err instanceof pg.DatabaseError) Object.defineProperty(err, 'database', { value: this.name, enumerable: false, configurable: true });
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
   * Begins a transaction (one round trip) with the pinned settings (db/settings.ts), so that
   * names resolve and values print the same whatever the role's defaults, and optional
   * transaction-local `settings`. `first`, one statement without parameters, runs in the same
   * round trip as the transaction's first statement; its rows are returned.
   */
  async begin<R extends pg.QueryResultRow = pg.QueryResultRow>(
    isolation: 'read committed' | 'repeatable read' = 'read committed',
    settings: Record<string, string> = {},
    first?: string,
  ): Promise<R[]> {
    return this.#begin<R>('', isolation, settings, first);
  }

  /** begin(), after `before` (statements without parameters) in the same round trip. */
  async #begin<R extends pg.QueryResultRow>(before: string, isolation: 'read committed' | 'repeatable read', settings: Record<string, string>, first?: string): Promise<R[]> {
    // The string is parsed before its SET LOCALs run: escape strings read the same whatever
    // standard_conforming_strings the role has.
    const extra = Object.entries(settings).map(([k, v]) => `SELECT pg_catalog.set_config(${escapeLiteral(k)}, ${escapeLiteral(v)}, true);`);
    // In a transaction from here on, even if a statement after BEGIN fails: close() rolls back.
    this.#inTx = true;
    this.#settings = new Map(Object.entries(settings));
    this.#savepoints = [];
    this.#filledTemp.clear();
    const r = await this.query(
      `${before}BEGIN ISOLATION LEVEL ${isolation === 'repeatable read' ? 'REPEATABLE READ' : 'READ COMMITTED'};
       ${pinSql('local')} SET LOCAL work_mem = '64MB'; ${extra.join(' ')}${first ? ` ${first}` : ''}`,
    );
    const results = r as unknown as pg.QueryResult<R> | pg.QueryResult<R>[];
    return first ? (Array.isArray(results) ? results.at(-1)! : results).rows : [];
  }

  /**
   * lock(key), then begin(...), in one round trip: the lock's statement ends in a transaction
   * of its own, so the new transaction's snapshot is taken after the wait.
   */
  async lockAndBegin<R extends pg.QueryResultRow = pg.QueryResultRow>(
    key: LockKey,
    isolation: 'read committed' | 'repeatable read',
    settings: Record<string, string>,
    first?: string,
  ): Promise<R[]> {
    try {
      const rows = await this.#begin<R>(`SELECT pg_catalog.pg_advisory_lock(${lockArgsInline(key)}); COMMIT; `, isolation, settings, first);
      this.#locks.push(key);
      return rows;
    } catch (err) {
      // Whether the lock was granted is unknown: never pool this connection.
      this.#broken = err as Error;
      throw err;
    }
  }

  /** Sets a transaction-local setting, skipping the round trip when it already has that value. */
  async setLocal(name: string, value: string): Promise<void> {
    if (this.#settings.get(name) === value) return;
    await this.query(`SELECT pg_catalog.set_config($1, $2, true)`, [name, value]);
    this.#settings.set(name, value);
  }

  /** Sets a savepoint; rollbackTo() goes back to it, transaction-local settings included. */
  async savepoint(name: string): Promise<void> {
    await this.query(`SAVEPOINT ${ident(name)}`);
    this.#savepoints.push({ name, settings: new Map(this.#settings) });
  }

  async release(name: string): Promise<void> {
    await this.query(`RELEASE SAVEPOINT ${ident(name)}`);
    this.#dropSavepoints(name, true);
  }

  /**
   * Rolls back to a savepoint. The server undoes the settings made since, so the cache of
   * transaction-local settings goes back to what it was then (else a later setLocal() of the
   * same value would be skipped and the write would carry a wrong origin).
   */
  async rollbackTo(name: string): Promise<void> {
    await this.query(`ROLLBACK TO SAVEPOINT ${ident(name)}`);
    const sp = this.#dropSavepoints(name, false);
    if (sp) this.#settings = new Map(sp.settings);
  }

  /** Forgets savepoints set after `name` (and `name` itself when `including`); returns `name`'s. */
  #dropSavepoints(name: string, including: boolean): { name: string; settings: Map<string, string> } | undefined {
    const i = this.#savepoints.map((x) => x.name).lastIndexOf(name);
    if (i < 0) return undefined;
    const sp = this.#savepoints[i]!;
    this.#savepoints.length = including ? i : i + 1;
    return sp;
  }

  /**
   * Commits; `last`, statements without parameters, run just before COMMIT in the same round
   * trip (if one fails, the rest does not run and the transaction stays open, aborted). With
   * `unlock`, the advisory locks are released right after COMMIT, in the same round trip.
   * `last` may hold literals only in a transaction begin() opened (it pins how they read).
   */
  async commit(last?: string, options: { unlock?: boolean } = {}): Promise<void> {
    const locks = options.unlock ? this.#locks : [];
    const unlocks = locks.map((k) => ` SELECT pg_catalog.pg_advisory_unlock(${lockArgsInline(k)}) AS ok;`).join('');
    const r = await this.query(`${last ? `${last}; ` : ''}COMMIT;${unlocks}`);
    if (locks.length > 0) {
      this.#locks = [];
      const results = r as unknown as pg.QueryResult<{ ok: boolean }>[];
      // A lock that was not held: something is off with this connection, never pool it.
      if (results.slice(-locks.length).some((x) => x.rows[0]?.ok !== true)) this.#broken = new Error('an advisory lock was not held at commit');
    }
    this.#inTx = false;
    this.#settings.clear();
    this.#savepoints = [];
    this.#filledTemp.clear();
    const known = backendOf(this.client).temp;
    for (const [name, def] of this.#createdTemp) known.set(name, def);
    this.#createdTemp.clear();
  }

  /**
   * Makes an empty temporary table from `createSql` (a CREATE TEMP TABLE ... ON COMMIT DELETE
   * ROWS statement). A pooled connection keeps its temporary tables between runs, so when this
   * backend already has one of the same definition it is reused (emptied), which spares the
   * catalog writes of creating it again on every run, and one used before in the same
   * transaction is emptied; otherwise it is empty already (ON COMMIT DELETE ROWS).
   */
  async tempTable(name: string, createSql: string): Promise<void> {
    const filled = this.#filledTemp.has(name);
    this.#filledTemp.add(name);
    if (this.#createdTemp.get(name) === createSql || (!this.#createdTemp.has(name) && backendOf(this.client).temp.get(name) === createSql)) {
      if (filled || !this.#inTx) await this.query(`DELETE FROM pg_temp.${ident(name)}`);
      return;
    }
    this.#forgetTemp(name);
    await this.query(`DROP TABLE IF EXISTS pg_temp.${ident(name)}; ${createSql}`);
    this.#createdTemp.set(name, createSql);
  }

  /**
   * Gives the planner statistics for a temporary table just filled with `rows` rows (see
   * tempTable), so that it joins a large one by hash and a small one by its key. A backend's
   * reused table keeps the row density of its last ANALYZE, which the planner scales by the
   * table's current size: small fills of a table analyzed before need none.
   */
  async analyzeTemp(name: string, rows: number): Promise<void> {
    const { analyzed } = backendOf(this.client);
    if (rows === 0 || (rows <= SMALL_FILL && analyzed.has(name))) return;
    // A small sample does: the planner needs the table's size more than its value histograms
    // (the setting only changes what ANALYZE reads, for the rest of the transaction).
    await this.query(`SET LOCAL default_statistics_target = ${TEMP_STATISTICS}; ANALYZE pg_temp.${ident(name)}`);
    analyzed.add(name);
  }

  /** The backend no longer has temporary table `name` as recorded (dropped, or never committed). */
  #forgetTemp(name: string): void {
    const b = backendOf(this.client);
    b.temp.delete(name);
    b.analyzed.delete(name);
  }

  /** Releases the advisory locks; a connection that cannot is destroyed (which releases them). */
  async #unlock(): Promise<void> {
    const locks = this.#locks;
    this.#locks = [];
    if (locks.length === 0 || this.#broken) return;
    try {
      for (const k of locks) {
        const r = await this.client.query<{ ok: boolean }>(`SELECT pg_catalog.pg_advisory_unlock(${lockArgs(1)}) AS ok`, lockValues(k));
        if (!r.rows[0]?.ok) throw new Error(`advisory lock ${k.kind} ${k.subject} was not held`);
      }
    } catch (err) {
      this.#broken = err as Error;
    }
  }

  async rollback(): Promise<void> {
    // Tables created in a rolled-back transaction are gone; so may be any the run dropped.
    for (const name of this.#createdTemp.keys()) this.#forgetTemp(name);
    this.#createdTemp.clear();
    this.#filledTemp.clear();
    if (!this.#inTx || this.#broken) return;
    this.#inTx = false;
    try {
      await this.client.query('ROLLBACK');
    } catch (err) {
      this.#broken = err as Error;
    }
  }

  /** Cuts the connection (its transaction rolls back on the server); nothing once it went back to the pool. */
  destroy(): void {
    if (this.#closed) return;
    this.#broken = new Error('destroyed');
    destroyConnection(this.client);
  }

  /**
   * Takes a session-level advisory lock, waiting for it. Call outside a transaction: a
   * REPEATABLE READ snapshot taken before the wait would be stale when the wait ends. Held
   * until close().
   */
  async lock(key: LockKey): Promise<void> {
    try {
      await this.query(`SELECT pg_catalog.pg_advisory_lock(${lockArgs(1)})`, lockValues(key));
    } catch (err) {
      // The server may still grant it (a client-side timeout, a cancel): never pool this one.
      this.#broken = err as Error;
      throw err;
    }
    this.#locks.push(key);
  }

  /** Rolls back what is open and returns the connection (destroyed when broken). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.rollback();
    await this.#unlock();
    this.client.removeListener('error', this.#onError);
    this.client.release(this.#broken ?? (this.#inTx ? new Error('transaction still open') : undefined));
  }
}

/**
 * What a backend has, by the connection's client: its temporary tables (committed; name →
 * definition) and those of them analyzed since they were created (see analyzeTemp).
 */
interface Backend {
  temp: Map<string, string>;
  analyzed: Set<string>;
}
const backends = new WeakMap<object, Backend>();
function backendOf(client: object): Backend {
  let b = backends.get(client);
  if (!b) backends.set(client, (b = { temp: new Map(), analyzed: new Set() }));
  return b;
}

/** Ends the connection of `client` at once (no goodbye to the server). */
export function destroyConnection(client: object): void {
  (client as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}

/** Fills up to this many rows need no fresh statistics once a table has some. */
const SMALL_FILL = 1000;
/** Statistics target of temporary tables' ANALYZE: it samples 300 times as many rows. */
const TEMP_STATISTICS = 10;
