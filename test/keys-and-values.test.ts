/**
 * Keys and values that are easy to get subtly wrong (issue 11): keys that are equal for the
 * table but print differently, rows merged by a resolver travelling through JavaScript, a key
 * column widened after install, identity columns that change, and a watermark restored onto
 * another server.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Conflict } from '../src/index.js';
import { withDatabase } from '../tools/pg-servers.js';
import { createDatabases, servers, sqlAll, sqlAt, tableContents, type TestDb } from './helpers/db.js';
import { caught } from './helpers/errors.js';
import { kick, stopReplicatorsAfterEach } from './helpers/replicators.js';

const replicators = stopReplicatorsAfterEach();

async function expectSameRows(dbs: TestDb[], table: string): Promise<string[]> {
  const want = await tableContents(dbs[0]!, table);
  for (const db of dbs.slice(1)) expect(await tableContents(db, table), `${table} on ${db.name}`).toEqual(want);
  return want;
}

describe('keys equal for the table but printed differently', () => {
  it('citext, numeric scale and a case-insensitive collation: one key, one row, the same text everywhere', async () => {
    const dbs = await createDatabases(2);
    const [a, b] = dbs as [TestDb, TestDb];
    await sqlAll(dbs, `CREATE EXTENSION citext;
      CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
      CREATE TABLE ct (k citext PRIMARY KEY, v text);
      CREATE TABLE nt (k numeric PRIMARY KEY, v text);
      CREATE TABLE lt (k text COLLATE ci PRIMARY KEY, v text)`);
    const rep = await replicators.installed(dbs, { tables: ['ct', 'nt', 'lt'], databases: { a: 'source', b: 'source' }, conflictStrategy: ['b', 'a'] });
    const conflicts: string[] = [];
    rep.on('conflict', (e) => conflicts.push(`${e.table} ${e.winner}`));
    await a.sql(`INSERT INTO ct VALUES ('Foo', 'a'); INSERT INTO nt VALUES (1.0, 'a'); INSERT INTO lt VALUES ('ABC', 'a')`);
    await b.sql(`INSERT INTO ct VALUES ('foo', 'b'); INSERT INTO nt VALUES (1.00, 'b'); INSERT INTO lt VALUES ('abc', 'b')`);
    const r = await kick(rep);
    expect(r.totals.conflicts).toBe(3);
    expect(conflicts.sort()).toEqual(['public.ct b', 'public.lt b', 'public.nt b']);
    expect(await expectSameRows(dbs, 'ct')).toEqual(['(foo,b)']);
    expect(await expectSameRows(dbs, 'nt')).toEqual(['(1.00,b)']);
    expect(await expectSameRows(dbs, 'lt')).toEqual(['(abc,b)']);
    // A later change of the spelling on one side travels as a change of that key.
    await a.sql(`UPDATE ct SET k = 'FOO', v = 'a again'`);
    await kick(rep);
    expect(await expectSameRows(dbs, 'ct')).toEqual(['(FOO,"a again")']);
    expect((await kick(rep)).status).toBe('empty');
  });
});

describe('rows merged by a resolver', () => {
  it('round-trip exactly through JavaScript, whatever the process time zone', async () => {
    const dbs = await createDatabases(2);
    const [a, b] = dbs as [TestDb, TestDb];
    await sqlAll(dbs, `CREATE TABLE m (id int PRIMARY KEY, who text, d date, ts timestamp(6), tz timestamptz(6), tm time(6), i interval,
                                     n numeric(30, 12), f float8, bits bytea, j jsonb, arr timestamp[], nums int[])`);
    await sqlAll(dbs, `INSERT INTO m VALUES (1, 'seed', '2024-03-31', '2024-03-31 02:30:00.123456', '2024-03-31 02:30:00.654321+00', '23:59:59.999999',
                                        '1 year 2 mons 3 days 04:05:06.000007', 123456789012345678.123456789012, 'NaN', '\\x00ff', '{"a": [1, 2.50]}',
                                        '{"2024-01-01 00:00:00.000001","1999-12-31 23:59:59"}', '{1,2,3}')`);
    const merge = (c: Conflict) => ({ row: { ...c.rows.a!, who: `${c.rows.a!.who as string}+${c.rows.b!.who as string}` } });
    const rep = await replicators.installed(dbs, { tables: ['m'], databases: { a: 'source', b: 'source' }, conflictStrategy: merge });
    const before = process.env.TZ;
    process.env.TZ = 'Asia/Kolkata';
    onTestFinished(() => {
      if (before === undefined) delete process.env.TZ;
      else process.env.TZ = before;
    });
    await a.sql(`UPDATE m SET who = 'a'`);
    await b.sql(`UPDATE m SET who = 'b'`);
    const r = await kick(rep);
    expect(r.totals.conflicts).toBe(1);
    const rows = await expectSameRows(dbs, 'm');
    expect(rows).toEqual([
      '(1,a+b,2024-03-31,"2024-03-31 02:30:00.123456","2024-03-31 02:30:00.654321+00",23:59:59.999999,"1 year 2 mons 3 days 04:05:06.000007",123456789012345678.123456789012,NaN,"\\\\x00ff","{""a"": [1, 2.50]}","{""2024-01-01 00:00:00.000001"",""1999-12-31 23:59:59""}","{1,2,3}")',
    ]);
  });
});

describe('schema changes after install', () => {
  it('a key widened from int to bigint: runs refuse with SCHEMA_MISMATCH until install(), which widens the delta table; nothing is lost', async () => {
    const dbs = await createDatabases(2);
    const [a, b] = dbs as [TestDb, TestDb];
    await sqlAll(dbs, `CREATE TABLE w (id int PRIMARY KEY, v text)`);
    const rep = await replicators.installed(dbs, { tables: ['w'] });
    await a.sql(`INSERT INTO w VALUES (1, 'before')`);
    // A run before the change: the pooled source connection keeps a key table for int keys.
    await kick(rep);
    await a.sql(`INSERT INTO w VALUES (2, 'between')`);
    await sqlAll(dbs, `ALTER TABLE w ALTER COLUMN id TYPE bigint`);
    const err = await caught(() => rep.kick('s'));
    expect(err).toMatchObject({ code: 'SCHEMA_MISMATCH', table: 'public.w', column: 'id' });
    expect(err.message).toContain('now bigint, but pgferry captures it as integer');
    await rep.install();
    await a.sql(`INSERT INTO w VALUES (3000000000, 'past 2^31')`);
    await kick(rep);
    expect(await expectSameRows(dbs, 'w')).toEqual(['(1,before)', '(2,between)', '(3000000000,"past 2^31")']);
    expect(await b.sql(`SELECT v FROM w WHERE id = 3000000000`)).toEqual([{ v: 'past 2^31' }]);
  });
});

describe('identity columns', () => {
  it('a GENERATED ALWAYS identity column that is not the key is updated on existing rows', async () => {
    const dbs = await createDatabases(2);
    const [a, b] = dbs as [TestDb, TestDb];
    await sqlAll(dbs, `CREATE TABLE g (id int PRIMARY KEY, seq int GENERATED ALWAYS AS IDENTITY, v text)`);
    const rep = await replicators.installed(dbs, { tables: ['g'] });
    await a.sql(`INSERT INTO g (id, v) VALUES (1, 'one'), (2, 'two')`);
    await kick(rep);
    // Deleted and inserted again: the row gets a new identity value at the source.
    await a.sql(`BEGIN; DELETE FROM g WHERE id = 1; INSERT INTO g (id, v) VALUES (1, 'one again'); COMMIT`);
    await kick(rep);
    expect(await expectSameRows(dbs, 'g')).toEqual(['(1,3,"one again")', '(2,2,two)']);
    // The column is GENERATED ALWAYS again afterwards.
    expect(await b.sql(`SELECT attidentity FROM pg_attribute WHERE attrelid = 'g'::regclass AND attname = 'seq'`)).toEqual([{ attidentity: 'a' }]);
  });
});

describe('a watermark from another server', () => {
  it('restored with the library schema onto another server: the sync starts over and no change is skipped', async () => {
    const [a, c] = (await createDatabases(2)) as [TestDb, TestDb];
    await sqlAll([a, c], `CREATE TABLE r (id int PRIMARY KEY, v text)`);
    const rep = await replicators.installed([a, c], { tables: ['r'], databases: { a: 'source', c: 'target' } });
    await a.sql(`INSERT INTO r VALUES (1, 'on the old server')`);
    await kick(rep);
    // The old server has used many more transaction ids than the new one.
    await a.sql(`CREATE PROCEDURE burn(n int) LANGUAGE plpgsql AS $$ BEGIN FOR i IN 1..n LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP; END $$`);
    const xid = async (db: string) => BigInt((await sqlAt<{ x: string }>(db, `SELECT pg_current_xact_id()::text AS x`))[0]!.x);
    while ((await xid(a.url)) < (await xid(c.url)) + 5000n) await a.sql(`CALL burn(3000)`);
    await a.sql(`INSERT INTO r VALUES (2, 'later on the old server')`);
    await kick(rep);

    // "Restore" a onto c's server: same rows, same pgferry schema and watermark.
    const name = `t_${randomBytes(5).toString('hex')}`;
    const server = servers()[1]!;
    await sqlAt(server, `CREATE DATABASE ${name}`);
    onTestFinished(() => sqlAt(server, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).then(() => undefined));
    const restored = withDatabase(server, name);
    await sqlAt(restored, `CREATE TABLE r (id int PRIMARY KEY, v text); INSERT INTO r VALUES (1, 'on the old server'), (2, 'later on the old server')`);
    const rep2 = await replicators.installed([{ url: restored }, c], { tables: ['r'], databases: { a: 'source', c: 'target' } });
    const mark = await a.sql<{ snapshot: string; system_id: string }>(`SELECT snapshot::text, system_id::text FROM pgferry.watermark`);
    await sqlAt(restored, `INSERT INTO pgferry.watermark (sync, snapshot, system_id) VALUES ('s', $1::pg_snapshot, $2)`, [mark[0]!.snapshot, mark[0]!.system_id]);

    // New writes on the new server, with transaction ids below the old watermark's.
    await sqlAt(restored, `INSERT INTO r VALUES (3, 'on the new server'); UPDATE r SET v = 'changed on the new server' WHERE id = 1`);
    await kick(rep2);
    expect(await tableContents(c, 'r')).toEqual(['(1,"changed on the new server")', '(2,"later on the old server")', '(3,"on the new server")']);
    await sqlAt(restored, `INSERT INTO r VALUES (4, 'and after')`);
    await kick(rep2);
    expect(await tableContents(c, 'r')).toEqual(await tableContents(restored, 'r'));
  });
});
