import pg from 'pg';
import { ident } from '../sql/ident.js';
import type { ConflictRecord } from '../types.js';
import type { ControlStore, RunRecord } from './control-store.js';

export interface PostgresControlStoreOptions {
  /** A connection string or pool config for the control database, or `{ pool }` you own. */
  connection: string | pg.PoolConfig | { pool: pg.Pool };
  /** Schema for the store's table (default `pgferry_control`). */
  schema?: string;
  /** Runs kept per sync (older ones are deleted); default 1000. */
  keepRuns?: number;
  /** Conflicts kept per sync (older ones are deleted); default 1000. */
  keepConflicts?: number;
}

/**
 * Conflict keys and rows go into jsonb. Their values are what node-postgres parses (strings,
 * numbers, booleans, null, arrays) plus Buffers for bytea, which JSON would turn into
 * `{ type: 'Buffer', data: [...] }`: a Buffer is kept as `{ "$bytea": "\\x<hex>" }` and read
 * back as a Buffer (rows hold no other objects: json values are their text).
 */
function encode(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return { $bytea: `\\x${v.toString('hex')}` };
  if (Array.isArray(v)) return v.map(encode);
  if (v !== null && typeof v === 'object' && !(v instanceof Date)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, encode(x)]));
  return v;
}

function decode(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(decode);
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length === 1 && keys[0] === '$bytea' && typeof o.$bytea === 'string') return Buffer.from(o.$bytea.slice(2), 'hex');
    return Object.fromEntries(keys.map((k) => [k, decode(o[k])]));
  }
  return v;
}

/**
 * Keeps run history in a PostgreSQL database, so it outlives the process and several
 * replicator processes can read one history.
 */
export class PostgresControlStore implements ControlStore {
  #pool: pg.Pool;
  readonly #config: pg.PoolConfig | null;
  readonly #owns: boolean;
  readonly #table: string;
  readonly #schema: string;
  readonly #keep: number;
  readonly #conflicts: string;
  readonly #keepConflicts: number;

  constructor(opts: PostgresControlStoreOptions) {
    const c = opts.connection;
    if (typeof c === 'object' && 'pool' in c && c.pool) {
      this.#pool = c.pool;
      this.#config = null;
      this.#owns = false;
    } else {
      this.#config = typeof c === 'string' ? { connectionString: c, max: 2 } : { max: 2, ...(c as pg.PoolConfig) };
      this.#pool = this.#newPool();
      this.#owns = true;
    }
    this.#schema = opts.schema ?? 'pgferry_control';
    this.#table = `${ident(this.#schema)}.runs`;
    this.#keep = opts.keepRuns ?? 1000;
    this.#conflicts = `${ident(this.#schema)}.conflicts`;
    this.#keepConflicts = opts.keepConflicts ?? 1000;
  }

  #newPool(): pg.Pool {
    const pool = new pg.Pool(this.#config!);
    pool.on('error', () => undefined);
    return pool;
  }

  /** The pool; one we own is opened again after close() (a replicator can stop and go on). */
  get #db(): pg.Pool {
    if (this.#owns && this.#pool.ended) this.#pool = this.#newPool();
    return this.#pool;
  }

  async init(): Promise<void> {
    await this.#db.query(`CREATE SCHEMA IF NOT EXISTS ${ident(this.#schema)}`);
    await this.#db.query(`CREATE TABLE IF NOT EXISTS ${this.#table} (
      run_id text PRIMARY KEY,
      sync text NOT NULL,
      reason text NOT NULL,
      status text NOT NULL,
      started_at timestamptz NOT NULL,
      duration_ms integer NOT NULL,
      rows bigint NOT NULL,
      error_code text,
      error_message text,
      instance text
    )`);
    // Stores made by 0.1 lack the instance column.
    await this.#db.query(`ALTER TABLE ${this.#table} ADD COLUMN IF NOT EXISTS instance text`);
    await this.#db.query(`CREATE INDEX IF NOT EXISTS runs_sync_started ON ${this.#table} (sync, started_at DESC)`);
    await this.#db.query(`CREATE TABLE IF NOT EXISTS ${this.#conflicts} (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      sync text NOT NULL,
      table_name text NOT NULL,
      key jsonb NOT NULL,
      resolution text NOT NULL,
      winner text,
      at timestamptz NOT NULL,
      rows jsonb NOT NULL
    )`);
    await this.#db.query(`CREATE INDEX IF NOT EXISTS conflicts_sync_id ON ${this.#conflicts} (sync, id DESC)`);
  }

  async recordConflicts(records: ConflictRecord[]): Promise<void> {
    if (records.length === 0) return;
    // New records and the trim of the oldest commit together: with one instance recording, a
    // reader never sees more than keepConflicts per sync.
    const c = await this.#db.connect();
    let broken: Error | undefined;
    try {
      await c.query('BEGIN');
      await this.#insertConflicts(c, records);
      await c.query('COMMIT');
    } catch (err) {
      broken = err as Error;
      await c.query('ROLLBACK').then(
        () => (broken = undefined),
        () => undefined,
      );
      throw err;
    } finally {
      c.release(broken);
    }
  }

  async #insertConflicts(c: pg.PoolClient, records: ConflictRecord[]): Promise<void> {
    await c.query(
      `INSERT INTO ${this.#conflicts} (sync, table_name, key, resolution, winner, at, rows)
       SELECT x.sync, x.table_name, x.key, x.resolution, x.winner, x.at, x.rows
         FROM jsonb_to_recordset($1::jsonb) AS x(n int, sync text, table_name text, key jsonb, resolution text, winner text, at timestamptz, rows jsonb)
        ORDER BY x.n`,
      [JSON.stringify(records.map((r, n) => ({ n, sync: r.sync, table_name: r.table, key: encode(r.key), resolution: r.resolution, winner: r.winner, at: r.at, rows: encode(r.rows) })))],
    );
    for (const sync of new Set(records.map((r) => r.sync))) {
      await c.query(
        `DELETE FROM ${this.#conflicts} WHERE sync = $1 AND id IN (SELECT id FROM ${this.#conflicts} WHERE sync = $1 ORDER BY id DESC OFFSET $2)`,
        [sync, this.#keepConflicts],
      );
    }
  }

  async conflicts(sync: string, limit: number): Promise<ConflictRecord[]> {
    const r = await this.#db.query(
      `SELECT sync, table_name, key, resolution, winner, at, rows FROM ${this.#conflicts} WHERE sync = $1 ORDER BY id DESC LIMIT $2`,
      [sync, limit],
    );
    return r.rows.map((x) => ({ sync: x.sync, table: x.table_name, key: decode(x.key) as ConflictRecord['key'], resolution: x.resolution, winner: x.winner, at: x.at, rows: decode(x.rows) as ConflictRecord['rows'] }));
  }

  async recordRun(run: RunRecord): Promise<void> {
    await this.#db.query(
      `INSERT INTO ${this.#table} (run_id, sync, reason, status, started_at, duration_ms, rows, error_code, error_message, instance)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (run_id) DO NOTHING`,
      [run.runId, run.sync, run.reason, run.status, run.startedAt, run.durationMs, run.rows, run.error?.code ?? null, run.error?.message ?? null, run.instance ?? null],
    );
    await this.#db.query(
      `DELETE FROM ${this.#table} WHERE sync = $1 AND run_id IN (SELECT run_id FROM ${this.#table} WHERE sync = $1 ORDER BY started_at DESC OFFSET $2)`,
      [run.sync, this.#keep],
    );
  }

  async runs(sync?: string, limit = 100): Promise<RunRecord[]> {
    const r = await this.#db.query(
      `SELECT run_id, sync, reason, status, started_at, duration_ms, rows, error_code, error_message, instance FROM ${this.#table}
        WHERE $1::text IS NULL OR sync = $1 ORDER BY started_at DESC LIMIT $2`,
      [sync ?? null, limit],
    );
    return r.rows.map((x) => ({
      runId: x.run_id,
      sync: x.sync,
      reason: x.reason,
      status: x.status,
      startedAt: x.started_at,
      durationMs: x.duration_ms,
      rows: Number(x.rows),
      ...(x.instance && { instance: x.instance }),
      ...(x.error_code && { error: { code: x.error_code, message: x.error_message } }),
    }));
  }

  async close(): Promise<void> {
    if (this.#owns && !this.#pool.ended) await this.#pool.end();
  }
}
