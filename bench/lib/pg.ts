/** Database helpers for the benchmarks: fresh databases, one-shot SQL, checksums, CLI env. */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startEmbeddedServer, withDatabase } from '../../tools/pg-servers.js';

export interface BenchServer {
  /** 'a' (first server, usually the source) or 'b' (second server). */
  id: 'a' | 'b';
  /** Admin connection string (database postgres). */
  url: string;
  version: string;
}

export interface BenchDb {
  name: string;
  url: string;
  server: BenchServer;
  sql<R extends pg.QueryResultRow = any>(text: string, values?: unknown[]): Promise<R[]>;
  /** Environment for libpq tools (pgbench, psql) pointing at this database. */
  env(): NodeJS.ProcessEnv;
  drop(): Promise<void>;
}

export async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
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

export function libpqEnv(url: string): NodeJS.ProcessEnv {
  const u = new URL(url);
  return {
    ...process.env,
    PGHOST: u.hostname,
    PGPORT: u.port || '5432',
    PGUSER: decodeURIComponent(u.username),
    PGPASSWORD: decodeURIComponent(u.password),
    PGDATABASE: decodeURIComponent(u.pathname.slice(1)) || 'postgres',
    PGAPPNAME: 'pgferry-bench',
  };
}

export async function createDb(server: BenchServer, prefix: string): Promise<BenchDb> {
  const name = `${prefix}_${randomBytes(3).toString('hex')}`;
  await sqlAt(server.url, `CREATE DATABASE ${name}`);
  const url = withDatabase(server.url, name);
  return {
    name,
    url,
    server,
    sql: (text, values) => sqlAt(url, text, values),
    env: () => libpqEnv(url),
    drop: async () => {
      await sqlAt(server.url, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

/** Row count and an md5 over the sorted text of every row. */
export async function checksum(db: BenchDb, table: string): Promise<{ count: number; md5: string }> {
  const r = await db.sql<{ n: string; h: string | null }>(
    `SELECT count(*) AS n, md5(string_agg(t::text, E'\\n' ORDER BY t::text COLLATE "C")) AS h FROM ${table} t`,
  );
  return { count: Number(r[0]!.n), md5: r[0]!.h ?? '' };
}

/**
 * Two fresh embedded servers for a script (durable settings unless `fast`), stopped after `fn`;
 * a failure sets the exit code.
 */
export async function withEmbeddedPair(fast: boolean, fn: (a: BenchServer, b: BenchServer) => Promise<void>): Promise<void> {
  const [ha, hb] = await Promise.all([startEmbeddedServer({ fast }), startEmbeddedServer({ fast })]);
  try {
    await fn({ id: 'a', url: ha.url, version: String(ha.version) }, { id: 'b', url: hb.url, version: String(hb.version) });
  } catch (err) {
    console.error(err);
    process.exitCode = 1;
  } finally {
    await Promise.all([ha.stop(), hb.stop()]);
  }
}
