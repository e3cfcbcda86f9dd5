import createDebug from 'debug';
import pg from 'pg';
import { CatalogCache } from '../catalog/cache.js';
import { PgferryError, isConnectionError, redact } from '../errors.js';
import { PINNED_SETTINGS, pinSql } from './settings.js';

const debug = createDebug('pgferry:db');

type PoolConfig = pg.PoolConfig;

const GUARDED = Symbol('pgferry.guarded');

/**
 * How long an idle pooled connection stays open. A run reuses the temporary tables and
 * prepared statements of the connections it had before, so connections stay warm between the
 * runs of an active sync instead of being closed and opened again.
 */
const IDLE_MS = 60_000;

/** One database of the replicator: a name and a pool (ours, or the caller's, which we never end). */
export class Database {
  readonly name: string;
  #pool: pg.Pool;
  readonly #config: PoolConfig | null;
  readonly #ownsPool: boolean;
  readonly #secrets: string[];
  /** Where it is, for messages: host:port/database, never a password. */
  readonly where: string;
  /** Table descriptions read here, kept between runs while the catalog rows stay the same. */
  readonly catalog = new CatalogCache();

  /** Longest wait for a connection from the pool before CONNECTION_FAILED. */
  readonly #waitMs: number;

  constructor(name: string, config: string | PoolConfig | { pool: pg.Pool }, waitMs = 30_000) {
    this.name = name;
    this.#waitMs = waitMs;
    if (typeof config === 'object' && 'pool' in config && config.pool) {
      this.#pool = config.pool as pg.Pool;
      this.#config = null;
      this.#ownsPool = false;
      const o = (config.pool as unknown as { options?: PoolConfig }).options ?? {};
      this.#secrets = secretsOf(o);
      this.where = describe(o);
    } else {
      const base: PoolConfig = typeof config === 'string' ? { connectionString: config } : { ...(config as PoolConfig) };
      // Statements outside pgferry's transactions (advisory locks, the control store) resolve
      // names with pgferry's search_path too, not one a database or role default planted.
      const options = [base.options, `-c search_path=${PINNED_SETTINGS.search_path!.replace(/ /g, '')}`].filter(Boolean).join(' ');
      this.#config = { max: 10, idleTimeoutMillis: IDLE_MS, application_name: 'pgferry', ...base, options };
      this.#pool = this.#newPool();
      this.#ownsPool = true;
      this.#secrets = secretsOf(base);
      this.where = describe(base);
    }
    this.#guard(this.#pool);
  }

  #newPool(): pg.Pool {
    return this.#guard(new pg.Pool(this.#config!));
  }

  /** An idle client losing its connection must not crash the host process. */
  #guard(pool: pg.Pool): pg.Pool {
    if (!pool.listeners('error').some((l) => (l as { pgferry?: boolean }).pgferry)) {
      const onError = (err: Error) => debug('%s: idle connection error: %s', this.name, this.redact(err.message));
      (onError as { pgferry?: boolean }).pgferry = true;
      pool.on('error', onError);
    }
    return pool;
  }

  /** The pool (a pool we own is opened again after close()). */
  get pool(): pg.Pool {
    if (this.#pool.ended && this.#ownsPool) this.#pool = this.#newPool();
    return this.#pool;
  }

  /** Settings for a dedicated connection (e.g. a LISTEN client). */
  clientConfig(): pg.ClientConfig {
    return (this.#config ?? (this.#pool as unknown as { options: pg.ClientConfig }).options) as pg.ClientConfig;
  }

  redact(text: string): string {
    return redact(text, this.#secrets);
  }

  /**
   * Checks out a connection, or throws CONNECTION_FAILED (transient): when the server cannot
   * be reached, or when no connection of the pool is free within the wait bound (a caller's
   * pool may be busy with the application; pgferry never waits for one forever).
   */
  async connect(): Promise<pg.PoolClient> {
    let c: pg.PoolClient;
    let timer: NodeJS.Timeout | undefined;
    const pending = this.pool.connect();
    try {
      c = await Promise.race([
        pending,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new PoolWaitTimeout(this.#waitMs, this.pool.options.max)), this.#waitMs);
        }),
      ]);
    } catch (err) {
      // A connection that arrives after we gave up goes straight back.
      if (err instanceof PoolWaitTimeout) pending.then((late) => late.release(), () => undefined);
      throw this.connectionError(err);
    } finally {
      clearTimeout(timer);
    }
    // A checked-out connection that dies emits 'error' on its client; without a listener
    // that would crash the host process. The query in flight fails on its own.
    const marked = c as pg.PoolClient & { [GUARDED]?: true };
    if (!marked[GUARDED]) {
      marked[GUARDED] = true;
      c.on('error', (err) => debug('%s: connection error: %s', this.name, this.redact(err.message)));
    }
    return c;
  }

  connectionError(err: unknown): PgferryError {
    if (err instanceof PoolWaitTimeout) {
      return new PgferryError('CONNECTION_FAILED', `Cannot get a connection to database "${this.name}" (${this.where}): ${err.message}.`, {
        database: this.name,
        transient: true,
      });
    }
    const msg = this.redact(err instanceof Error ? err.message || String((err as { code?: string }).code ?? err) : String(err));
    const auth = (err as { code?: string }).code === '28P01' || (err as { code?: string }).code === '28000';
    return new PgferryError(
      'CONNECTION_FAILED',
      `Cannot connect to database "${this.name}" (${this.where}): ${msg}. ` +
        (auth ? 'Check the user and password.' : 'Check that the server is running and reachable.'),
      { database: this.name, transient: !auth, cause: sanitizeCause(err, this) },
    );
  }

  /** Wraps errors of a query: connection losses become CONNECTION_FAILED. */
  wrap(err: unknown): unknown {
    if (err instanceof PgferryError) return err;
    if (isConnectionError(err)) return this.connectionError(err);
    if (err instanceof Error) err.message = this.redact(err.message);
    return err;
  }

  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]> {
    return this.withClient(async (c) => (await c.query<R>(text, values)).rows);
  }

  /** Runs `fn` in one transaction (with the pinned settings) on a checked-out connection; rolls back when it throws. */
  async transaction<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.connect();
    let broken: Error | undefined;
    try {
      await c.query(`BEGIN; ${pinSql('local')}`);
      const out = await fn(c);
      await c.query('COMMIT');
      return out;
    } catch (err) {
      await c.query('ROLLBACK').catch((e: Error) => (broken = e));
      throw this.wrap(err);
    } finally {
      c.release(broken);
    }
  }

  /** Runs `fn` with a checked-out connection (no transaction). */
  async withClient<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.connect();
    let broken: Error | undefined;
    try {
      return await fn(c);
    } catch (err) {
      if (isConnectionError(err)) broken = err as Error;
      throw this.wrap(err);
    } finally {
      c.release(broken);
    }
  }

  async close(): Promise<void> {
    if (this.#ownsPool && !this.#pool.ended) await this.#pool.end();
  }
}

class PoolWaitTimeout extends Error {
  constructor(ms: number, max: number | undefined) {
    super(`no connection of its pool (max ${max ?? 10}) was free within ${ms} ms; give the pool more connections, or use fewer at once`);
  }
}

function secretsOf(c: PoolConfig): string[] {
  const out: string[] = [];
  if (typeof c.password === 'string') out.push(c.password);
  if (c.connectionString) {
    try {
      const u = new URL(c.connectionString);
      if (u.password) out.push(u.password, decodeURIComponent(u.password));
    } catch {
      /* not a URL: key=value form */
      const m = /password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)/i.exec(c.connectionString);
      if (m?.[1]) out.push(m[1].replace(/^'|'$/g, ''));
    }
  }
  return out.filter((s) => s.length > 0);
}

function describe(c: PoolConfig): string {
  let host = c.host ?? '127.0.0.1';
  let port = String(c.port ?? 5432);
  let db = c.database ?? '';
  if (c.connectionString) {
    try {
      const u = new URL(c.connectionString);
      host = u.hostname || host;
      port = u.port || port;
      db = decodeURIComponent(u.pathname.replace(/^\//, '')) || db;
    } catch {
      return 'connection string';
    }
  }
  return `${host}:${port}/${db}`;
}

/** A cause safe to keep: same class of information, password removed. */
function sanitizeCause(err: unknown, db: Database): unknown {
  if (!(err instanceof Error)) return undefined;
  const e = new Error(db.redact(err.message));
  (e as { code?: unknown }).code = (err as { code?: unknown }).code;
  return e;
}
