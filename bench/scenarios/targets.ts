/**
 * Scenario targets: throughput of 100k changed rows (10k with --quick) into each kind of
 * receiver, beside a PostgreSQL target in the same run on the same source: one sync per
 * receiver over the same table; each repetition updates every row and kicks the syncs one
 * after the other (PostgreSQL, SQLite, MariaDB, Redis). SQLite writes a file in a temporary
 * directory; MariaDB and Redis are the servers of tools/target-servers.ts (Debian's packages,
 * or PGFERRY_TEST_MYSQL / PGFERRY_TEST_REDIS).
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import mysql from 'mysql2/promise';
import { startMariaDb, startRedis, type TargetServerHandle } from '../../tools/target-servers.js';
import type { Scenario, ScenarioOutput } from '../lib/context.js';
import { withPair } from '../lib/pair.js';
import { figure } from '../lib/report.js';

const PG = `CREATE TABLE items (id bigint PRIMARY KEY, name text, amount numeric(12,2), at timestamptz, doc jsonb)`;
const SQLITE = `CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, amount TEXT, at TEXT, doc TEXT)`;
const MYSQL = `CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT, amount DECIMAL(12,2), at DATETIME(6), doc JSON) DEFAULT CHARSET = utf8mb4`;
const KINDS = ['pg', 'sqlite', 'mysql', 'redis'] as const;
type Kind = (typeof KINDS)[number];

export const targets: Scenario = {
  name: 'targets',
  title: 'Throughput into SQLite, MariaDB and Redis receivers beside a PostgreSQL target',
  async run(ctx): Promise<ScenarioOutput> {
    const rows = ctx.quick ? 10_000 : 100_000;
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pgferry-bench-'));
    const servers: TargetServerHandle[] = [];
    try {
      const [my, redis] = await Promise.all([startMariaDb(), startRedis()]);
      servers.push(my, redis);
      const filename = path.join(dir, 'items.db');
      const sqlite = new Database(filename);
      sqlite.exec(SQLITE);
      sqlite.close();
      const admin = await mysql.createConnection({ uri: my.url });
      await admin.query('CREATE DATABASE bench_targets CHARACTER SET utf8mb4');
      await admin.query(`USE bench_targets`);
      await admin.query(MYSQL);
      const mysqlUri = `${my.url.replace(/\/$/, '')}/bench_targets`;
      return await withPair(ctx, 'targets', async (src, tgt, rep) => {
        await src.sql(PG);
        await tgt.sql(PG);
        await src.sql(`INSERT INTO items SELECT g, 'name ' || g, g / 100.0, now(), jsonb_build_object('n', g) FROM generate_series(1, ${rows}) g`);
        await rep.addDatabase('sqlite', { type: 'sqlite', filename });
        await rep.addDatabase('mysql', { type: 'mysql', uri: mysqlUri });
        await rep.addDatabase('redis', { type: 'redis', url: redis.url });
        const receiver: Record<Kind, string> = { pg: 'tgt', sqlite: 'sqlite', mysql: 'mysql', redis: 'redis' };
        for (const k of KINDS) await rep.addSync(k, { tables: ['items'], databases: { src: 'source', [receiver[k]]: 'target' }, autokick: false, onetimecopy: 'always' });
        await rep.install();
        const first: Record<string, number> = {};
        for (const k of KINDS) {
          const t0 = performance.now();
          await rep.kick(k);
          first[k] = rows / ((performance.now() - t0) / 1000);
        }
        const per: Record<Kind, number[]> = { pg: [], sqlite: [], mysql: [], redis: [] };
        for (let r = 0; r < ctx.runs; r++) {
          await src.sql(`UPDATE items SET amount = amount + 1, name = name || '.'`);
          for (const k of KINDS) {
            const t0 = performance.now();
            const result = await rep.kick(k);
            const s = (performance.now() - t0) / 1000;
            per[k].push(result.totals.upserted === rows ? rows / s : NaN);
          }
          ctx.log(`targets run ${r + 1}/${ctx.runs}: ${KINDS.map((k) => `${k} ${Math.round(per[k].at(-1)!)} rows/s`).join(', ')}`);
        }
        // Every receiver holds every row, with the last update.
        const want = `name ${rows}${'.'.repeat(ctx.runs)}`;
        const db = new Database(filename, { readonly: true });
        const counts: Record<Kind, number> = {
          pg: Number((await tgt.sql<{ n: string }>(`SELECT count(*) AS n FROM items WHERE name LIKE 'name %'`))[0]!.n),
          sqlite: Number((db.prepare(`SELECT count(*) AS n FROM items`).get() as { n: number }).n),
          mysql: Number(((await admin.query(`SELECT count(*) AS n FROM items`))[0] as { n: number }[])[0]!.n),
          redis: 0,
        };
        const lastSqlite = (db.prepare(`SELECT name FROM items WHERE id = ?`).get(rows) as { name: string }).name;
        db.close();
        const client = new Redis(redis.url);
        counts.redis = await client.scard('public.items:keys');
        const lastRedis = await client.hget(`public.items:${rows}`, 'name');
        client.disconnect();
        await admin.end();
        const ok = KINDS.every((k) => counts[k] === rows) && lastSqlite === want && lastRedis === want;
        const label = rows >= 1000 ? `${rows / 1000}k` : String(rows);
        const name: Record<Kind, string> = { pg: 'PostgreSQL', sqlite: `SQLite ${new Database(':memory:').prepare('SELECT sqlite_version()').pluck().get()}`, mysql: `MariaDB ${my.version}`, redis: `Redis ${redis.version}` };
        const figures = KINDS.map((k) =>
          figure({
            metric: `${name[k]} target, ${label} changed rows, one kick`,
            unit: 'rows/s',
            runs: ok ? per[k] : [],
            ...(!ok && { status: `receiver check failed (${KINDS.map((x) => `${x} ${counts[x]}`).join(', ')} of ${rows})` }),
            ...(k !== 'pg' && { reference: { label: 'PostgreSQL target, same run', runs: per.pg }, vs: { kind: 'ratio' as const, runs: per[k].map((x, i) => x / per.pg[i]!) } }),
          }),
        );
        const notes = [
          'One table: id bigint, text, numeric(12,2), timestamptz, jsonb; every row updated before each repetition, then one kick per receiver (one sync each, same source).',
          `First fill (onetimecopy, ${label} rows) in rows/s: ${KINDS.map((k) => `${k} ${Math.round(first[k]!)}`).join(', ')}.`,
        ];
        return { figures, notes, raw: { rows, per, first } };
      });
    } finally {
      for (const s of servers) await s.stop().catch(() => undefined);
      await fs.rm(dir, { recursive: true, force: true });
    }
  },
};
