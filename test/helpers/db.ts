/**
 * Per-test databases on the shared servers, connections to them, and helpers to compare contents.
 * Every test makes its own databases (fresh names) so files and tests never share state.
 */
import { randomBytes } from 'node:crypto';
import { inject, onTestFinished } from 'vitest';
import pg from 'pg';
import { withDatabase } from '../../tools/pg-servers.js';

export interface TestDb {
  /** Database name. */
  name: string;
  /** Superuser connection string to this database. */
  url: string;
  /** Admin connection string of the server (postgres database). */
  serverUrl: string;
  /** Runs SQL as superuser in this database (a fresh connection each time). */
  sql<R extends pg.QueryResultRow = any>(text: string, values?: unknown[]): Promise<R[]>;
}

export function servers(): string[] {
  return inject('servers');
}

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export async function sqlAt<R extends pg.QueryResultRow = any>(url: string, text: string, values?: unknown[]): Promise<R[]> {
  return withClient(url, async (c) => (await c.query<R>(text, values)).rows);
}

/**
 * Creates `count` fresh databases spread over the shared servers (database i on server i % servers),
 * dropped when the current test finishes (call inside a test) unless `keep` is set.
 */
export async function createDatabases(count: number, opts: { keep?: boolean; sameServer?: boolean } = {}): Promise<TestDb[]> {
  const urls = servers();
  const dbs: TestDb[] = [];
  for (let i = 0; i < count; i++) {
    const serverUrl = opts.sameServer ? urls[0]! : urls[i % urls.length]!;
    const name = `t_${randomBytes(5).toString('hex')}`;
    await sqlAt(serverUrl, `CREATE DATABASE ${name}`);
    const url = withDatabase(serverUrl, name);
    dbs.push({ name, url, serverUrl, sql: (text, values) => sqlAt(url, text, values) });
  }
  if (!opts.keep) {
    onTestFinished(async () => {
      for (const db of dbs) {
        await sqlAt(db.serverUrl, `DROP DATABASE IF EXISTS ${db.name} WITH (FORCE)`);
      }
    });
  }
  return dbs;
}

/**
 * An open connection to `db` for the application's writes in a test (call inside a test); it is
 * ended when the test finishes.
 */
export async function connect(db: TestDb | string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: typeof db === 'string' ? db : db.url });
  c.on('error', () => {}); // a dropped database at teardown must not crash the worker
  await c.connect();
  onTestFinished(() => c.end().catch(() => {}));
  return c;
}

/** Runs the same SQL in every database. */
export async function sqlAll(dbs: TestDb[], text: string): Promise<void> {
  for (const db of dbs) await db.sql(text);
}

/**
 * Full contents of a table as sorted text lines (every column, by its text output), so two
 * databases can be compared exactly. `table` is SQL (already quoted where needed).
 */
export async function tableContents(db: TestDb | string, table: string): Promise<string[]> {
  const url = typeof db === 'string' ? db : db.url;
  const rows = await sqlAt<{ r: string }>(url, `SELECT t::text AS r FROM ${table} t`);
  return rows.map((x) => x.r).sort();
}

/** Number of rows in `table` (SQL, already quoted where needed). */
export async function count(db: TestDb | string, table = 'public.t'): Promise<number> {
  const url = typeof db === 'string' ? db : db.url;
  const rows = await sqlAt<{ n: string }>(url, `SELECT count(*)::text AS n FROM ${table}`);
  return Number(rows[0]!.n);
}

/**
 * The last statement of every replicator LISTEN connection on `db`, sorted: 'LISTEN "pgferry"'
 * while it listens, 'UNLISTEN "pgferry"' while it is quiet (scheduler/listener.ts).
 */
export async function listenerStates(db: TestDb): Promise<string[]> {
  const rows = await sqlAt<{ query: string }>(
    db.url,
    `SELECT query FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pgferry' AND query ~ '^(UN)?LISTEN '`,
  );
  return rows.map((x) => x.query).sort();
}

/** md5 over the sorted text of every row, plus the row count. */
export async function tableChecksum(db: TestDb | string, table: string): Promise<{ count: number; md5: string }> {
  const url = typeof db === 'string' ? db : db.url;
  const rows = await sqlAt<{ n: string; h: string | null }>(
    url,
    `SELECT count(*) AS n, md5(string_agg(t::text, E'\\n' ORDER BY t::text COLLATE "C")) AS h FROM ${table} t`,
  );
  return { count: Number(rows[0]!.n), md5: rows[0]!.h ?? '' };
}

/** Creates a login role that is not a superuser, returns a connection string for it to `db`. */
export async function createLoginRole(db: TestDb, name = `r_${randomBytes(4).toString('hex')}`): Promise<{ name: string; url: string }> {
  const password = 'pw-' + randomBytes(6).toString('hex');
  await db.sql(`DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${name}') THEN CREATE ROLE ${name} LOGIN PASSWORD '${password}' NOSUPERUSER; ELSE ALTER ROLE ${name} PASSWORD '${password}'; END IF; END $$`);
  await db.sql(`GRANT CREATE, CONNECT ON DATABASE ${db.name} TO ${name}`);
  return { name, url: withDatabase(db.serverUrl, db.name, { name, password }) };
}
