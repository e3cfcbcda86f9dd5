/**
 * validate(): comparison by hashed key ranges on the servers, and repair.
 */
import { expect, it } from 'vitest';
import { readTable, copiedColumns } from '../src/catalog/tables.js';
import { Database } from '../src/db/database.js';
import { Session } from '../src/db/session.js';
import type { Replicator, ValidationResult } from '../src/index.js';
import { summarize } from '../src/sync/ranges.js';
import { connect, createDatabases, sqlAll, tableChecksum, tableContents, type TestDb } from './helpers/db.js';
import { record } from './helpers/events.js';
import { declareSync, stopReplicatorsAfterEach } from './helpers/replicators.js';
import { waitFor } from './helpers/wait.js';

const replicators = stopReplicatorsAfterEach();

/** Every database holds exactly the same rows in `table`. */
async function expectSameContents(dbs: TestDb[], table: string): Promise<void> {
  const [first, ...rest] = await Promise.all(dbs.map((d) => tableContents(d, table)));
  for (const other of rest) expect(other).toEqual(first);
}

function differences(v: ValidationResult, table = 'public.t') {
  return v.tables[table]!.differences;
}

/** The differences in the order of their keys' JSON text (code points). */
function sortedDifferences(v: ValidationResult) {
  const text = (d: { key: unknown }) => JSON.stringify(d.key);
  return [...differences(v)].sort((x, y) => (text(x) < text(y) ? -1 : text(x) > text(y) ? 1 : 0));
}

it('validate() lists keys that differ or are missing, and says equal once replicated', async () => {
  const [a, b] = await createDatabases(2);
  await sqlAll([a!, b!], 'CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE nokey (x int)');
  const rep = await replicators.installed([a!, b!], { tables: ['t'] });
  await a!.sql(`INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three')`);
  await b!.sql(`INSERT INTO t VALUES (2, 'TWO'), (4, 'four')`);
  const before = await rep.validate('s');
  expect(before.equal).toBe(false);
  const t = before.tables['public.t']!;
  expect(t.rows).toEqual({ a: 3, b: 2 });
  expect(t.differences).toEqual([
    { key: { id: 1 }, missingOn: ['b'], differsOn: [] },
    { key: { id: 2 }, missingOn: [], differsOn: ['b'] },
    { key: { id: 3 }, missingOn: ['b'], differsOn: [] },
    { key: { id: 4 }, missingOn: ['a'], differsOn: [] },
  ]);
  await rep.kick('s');
  await b!.sql(`DELETE FROM t WHERE id = 4`);
  const after = await rep.validate('s');
  expect(after).toMatchObject({ sync: 's', equal: true, tables: { 'public.t': { rows: { a: 3, b: 3 }, differences: [] } } });
});

it('finds a changed, a missing and an extra row in 1M rows, repairs them, and then reports equal', { timeout: 180_000 }, async () => {
  const [a, b] = await createDatabases(2);
  await sqlAll([a!, b!], `CREATE TABLE t (id bigint PRIMARY KEY, v text NOT NULL, n numeric);
                          INSERT INTO t SELECT g, 'row ' || g, g / 7.0 FROM generate_series(1, 1000000) g; ANALYZE t`);
  await b!.sql(`UPDATE t SET v = 'changed' WHERE id = 123457; DELETE FROM t WHERE id = 654321; INSERT INTO t VALUES (1000001, 'extra', 1)`);
  const rep = await replicators.installed([a!, b!], { tables: ['t'] });
  const events = record(rep, ['validate:progress']);
  const found = await rep.validate('s');
  expect(found.equal).toBe(false);
  expect(found.tables['public.t']!.rows).toEqual({ a: 1_000_000, b: 1_000_000 });
  expect(differences(found)).toEqual([
    { key: { id: '123457' }, missingOn: [], differsOn: ['b'] },
    { key: { id: '654321' }, missingOn: ['b'], differsOn: [] },
    { key: { id: '1000001' }, missingOn: ['a'], differsOn: [] },
  ]);
  const progress = events.byName['validate:progress'];
  expect(progress.at(-1)).toMatchObject({ sync: 's', table: 'public.t', rows: 1_000_000, done: true });
  expect(progress.at(-1)!.totalEstimate).toBeGreaterThan(900_000);
  expect(progress.filter((e) => e.done)).toHaveLength(1);

  const repaired = await rep.validate('s', { repair: true });
  expect(repaired).toMatchObject({ equal: false, repaired: true, tables: { 'public.t': { winner: 'a', repaired: { b: { upserted: 2, deleted: 1, pending: 0 } } } } });
  expect(differences(repaired)).toEqual(differences(found));
  expect(await rep.validate('s')).toMatchObject({ equal: true, tables: { 'public.t': { rows: { a: 1_000_000, b: 1_000_000 }, differences: [], truncated: false } } });
  expect(await tableChecksum(b!, 't')).toEqual(await tableChecksum(a!, 't'));
  // Nothing of the repair is sent on: the next run has nothing to do.
  expect((await rep.kick('s')).status).toBe('empty');
});

it('equal tables report nothing, and repair changes nothing', async () => {
  const [a, b] = await createDatabases(2);
  await sqlAll([a!, b!], `CREATE TABLE t (id int PRIMARY KEY, v jsonb, at timestamptz);
                          INSERT INTO t SELECT g, jsonb_build_object('g', g), '2024-01-01'::timestamptz + g * interval '1 min' FROM generate_series(1, 5000) g`);
  const rep = await replicators.installed([a!, b!], { tables: ['t'] });
  const v = await rep.validate('s', { repair: true });
  expect(v).toEqual({
    sync: 's',
    equal: true,
    repaired: true,
    tables: { 'public.t': { rows: { a: 5000, b: 5000 }, equal: true, differences: [], truncated: false, winner: 'a', repaired: {} } },
  });
  expect(await b!.sql(`SELECT count(*)::int AS n FROM pgferry.fences`)).toEqual([{ n: 0 }]);
});

it('compares composite keys by their types, and repairs them', async () => {
  const [a, b] = await createDatabases(2);
  await sqlAll([a!, b!], `CREATE TABLE t (region text, n int, v text, PRIMARY KEY (region, n));
                          INSERT INTO t SELECT r, g, r || g FROM unnest(ARRAY['eu', 'us', 'Ünï "q"', 'a,b']) r, generate_series(1, 3000) g`);
  await b!.sql(`UPDATE t SET v = 'x' WHERE region = 'us' AND n = 10;
                DELETE FROM t WHERE region = 'Ünï "q"' AND n = 2999;
                INSERT INTO t VALUES ('a,b', 3001, 'new'), ('zz', 1, 'new')`);
  const rep = await replicators.installed([a!, b!], { tables: ['t'] });
  const v = await rep.validate('s');
  expect(v.tables['public.t']!.rows).toEqual({ a: 12000, b: 12001 });
  expect(sortedDifferences(v)).toEqual([
    { key: { region: 'a,b', n: 3001 }, missingOn: ['a'], differsOn: [] },
    { key: { region: 'us', n: 10 }, missingOn: [], differsOn: ['b'] },
    { key: { region: 'zz', n: 1 }, missingOn: ['a'], differsOn: [] },
    { key: { region: 'Ünï "q"', n: 2999 }, missingOn: ['b'], differsOn: [] },
  ]);
  const r = await rep.validate('s', { repair: true });
  expect(r.tables['public.t']!.repaired).toEqual({ b: { upserted: 2, deleted: 2, pending: 0, pendingKeys: [] } });
  await expectSameContents([a!, b!], 't');
});

it('compares composite keys of ordered types by key ranges, cut until small', async () => {
  const [a, b] = await createDatabases(2);
  await sqlAll([a!, b!], `CREATE TABLE u (n int, d date, v text, PRIMARY KEY (n, d));
                          INSERT INTO u SELECT g % 7, '2024-01-01'::date + g, 'v' FROM generate_series(1, 100000) g`);
  await b!.sql(`UPDATE u SET v = 'x' WHERE n = 3 AND d = '2024-01-01'::date + 9999; DELETE FROM u WHERE n = 0 AND d = '2024-01-01'::date + 7;
                INSERT INTO u VALUES (6, '1999-12-31', 'new')`);
  const rep = await replicators.installed([a!, b!], { tables: ['u'] });
  const v = await rep.validate('s');
  expect(v.tables['public.u']!.rows).toEqual({ a: 100000, b: 100000 });
  expect(differences(v, 'public.u')).toEqual([
    // (node-postgres parses a date as local midnight.)
    { key: { n: 0, d: new Date(2024, 0, 8) }, missingOn: ['b'], differsOn: [] },
    { key: { n: 3, d: new Date(2051, 4, 18) }, missingOn: [], differsOn: ['b'] },
    { key: { n: 6, d: new Date(1999, 11, 31) }, missingOn: ['a'], differsOn: [] },
  ]);
  await rep.validate('s', { repair: true });
  await expectSameContents([a!, b!], 'u');
});

it('compares a table without a key as a multiset of rows, and repairs it by replacing it', async () => {
  const [a, b] = await createDatabases(2);
  await sqlAll([a!, b!], `CREATE TABLE t (x int, y text); INSERT INTO t SELECT g % 1000, 'y' FROM generate_series(1, 10000) g`);
  await a!.sql(`INSERT INTO t VALUES (1, 'y'), (NULL, 'only a')`);
  await b!.sql(`INSERT INTO t VALUES (2, NULL)`);
  const rep = await declareSync(replicators.create(), [a!, b!], { tables: ['t'], databases: { a: 'source', b: 'fullcopy' } });
  const v = await rep.validate('s');
  expect(v.tables['public.t']!.rows).toEqual({ a: 10002, b: 10001 });
  expect(sortedDifferences(v)).toEqual([
    { key: { x: 1, y: 'y' }, missingOn: ['b'], differsOn: [] },
    { key: { x: 2, y: null }, missingOn: ['a'], differsOn: [] },
    { key: { x: null, y: 'only a' }, missingOn: ['b'], differsOn: [] },
  ]);
  const r = await rep.validate('s', { repair: true });
  expect(r.tables['public.t']!.repaired).toEqual({ b: { upserted: 10002, deleted: 10001, pending: 0, pendingKeys: [] } });
  await expectSameContents([a!, b!], 't');
  expect((await rep.validate('s')).equal).toBe(true);
});

/** Multi-master a, b (precedence b, a) and target c, with different rows written before install. */
async function multiMaster(): Promise<{ dbs: TestDb[]; rep: Replicator }> {
  const dbs = await createDatabases(3);
  const [a, b, c] = dbs;
  await sqlAll(dbs, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 2000) g`);
  await a!.sql(`UPDATE t SET v = 'a' WHERE id IN (1, 2); INSERT INTO t VALUES (3001, 'a only')`);
  await b!.sql(`UPDATE t SET v = 'b' WHERE id = 2; DELETE FROM t WHERE id = 3; INSERT INTO t VALUES (3002, 'b only')`);
  await c!.sql(`UPDATE t SET v = 'c' WHERE id = 4`);
  const rep = await replicators.installed(dbs, { tables: ['t'], databases: { a: 'source', b: 'source', c: 'target' }, conflictStrategy: ['b', 'a'] });
  return { dbs, rep };
}

it('multi-master: repair keeps the rows of the first database of the precedence list, and is not echoed', async () => {
  const { dbs, rep } = await multiMaster();
  const [a, b, c] = dbs;
  const expected = await tableContents(b!, 't');
  const r = await rep.validate('s', { repair: true });
  expect(r.tables['public.t']).toMatchObject({
    winner: 'b',
    repaired: { a: { upserted: 3, deleted: 2, pending: 0 }, c: { upserted: 3, deleted: 1, pending: 0 } },
  });
  expect(await tableContents(a!, 't')).toEqual(expected);
  expect(await tableContents(c!, 't')).toEqual(expected);
  // The repaired writes on source a are tagged as the sync's own: nothing is pending, a run applies nothing.
  expect((await rep.metrics()).syncs.s!.backlog).toEqual({ a: 0, b: 0 });
  expect(await a!.sql(`SELECT DISTINCT applied_by, origin FROM pgferry.delta_${await deltaSuffix(a!)}`)).toEqual([{ applied_by: 's', origin: 'b' }]);
  const run = await rep.kick('s');
  expect(run.totals).toMatchObject({ upserted: 0, deleted: 0 });
  expect(await tableContents(c!, 't')).toEqual(expected);
});

async function deltaSuffix(db: TestDb): Promise<string> {
  const rows = await db.sql<{ relname: string }>(`SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE nspname = 'pgferry' AND relname LIKE 'delta\\_%'`);
  return rows[0]!.relname.slice('delta_'.length);
}

it('multi-master: repair leaves a key alone where a change to it is not delivered yet; the next run settles it', async () => {
  const { dbs, rep } = await multiMaster();
  const [a, b, c] = dbs;
  // An application writes on a (not the winner) after install: the sync has not carried it yet.
  await a!.sql(`UPDATE t SET v = 'a, later' WHERE id = 1`);
  const r = await rep.validate('s', { repair: true });
  expect(r.tables['public.t']!.repaired).toEqual({
    a: { upserted: 2, deleted: 2, pending: 1, pendingKeys: [{ id: 1 }] },
    c: { upserted: 3, deleted: 1, pending: 0, pendingKeys: [] },
  });
  expect(await a!.sql(`SELECT v FROM t WHERE id = 1`)).toEqual([{ v: 'a, later' }]);
  await rep.kick('s');
  expect(await b!.sql(`SELECT v FROM t WHERE id = 1`)).toEqual([{ v: 'a, later' }]);
  await expectSameContents([a!, b!, c!], 't');
  expect((await rep.validate('s')).equal).toBe(true);
});

it('a repair waits for a run of another instance (run lock), then repairs what that run left', async () => {
  const [a, b] = await createDatabases(2);
  await sqlAll([a!, b!], `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' FROM generate_series(1, 100) g`);
  await b!.sql(`INSERT INTO t VALUES (999, 'extra on b')`);
  const rep = await replicators.installed([a!, b!], { tables: ['t'] });
  const other = await declareSync(replicators.create({ name: 'other' }), [a!, b!], { tables: ['t'] });
  await a!.sql(`INSERT INTO t VALUES (101, 'new on a')`);
  // The other instance's run holds the run lock on a while it waits for a table lock on b.
  const blocker = await connect(b!);
  await blocker.query('BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE');
  const waiting = async (db: TestDb, event: string) =>
    (await db.sql(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = $1`, [event])).length > 0;
  const kick = other.kick('s');
  await waitFor('the run of the other instance to wait on b', () => waiting(b!, 'relation'));
  const repair = rep.validate('s', { repair: true });
  await waitFor('the repair to wait for the run lock on a', () => waiting(a!, 'advisory'));
  await blocker.query('COMMIT');
  expect((await kick).tables['public.t']).toMatchObject({ upserted: 1 });
  const r = await repair;
  // It compared after the run: row 101 was delivered; only the extra row was left to repair.
  expect(differences(r)).toEqual([{ key: { id: 999 }, missingOn: ['a'], differsOn: [] }]);
  expect(r.tables['public.t']!.repaired).toEqual({ b: { upserted: 0, deleted: 1, pending: 0, pendingKeys: [] } });
  await expectSameContents([a!, b!], 't');
});

it('a repair honours foreign keys: parents written before children, children deleted before parents', async () => {
  const [a, b] = await createDatabases(2);
  await sqlAll([a!, b!], `CREATE TABLE p (id int PRIMARY KEY, v text);
                          CREATE TABLE c (id int PRIMARY KEY, p int NOT NULL REFERENCES p, v text);
                          INSERT INTO p SELECT g, 'p' FROM generate_series(1, 10) g; INSERT INTO c SELECT g, g, 'c' FROM generate_series(1, 10) g`);
  await a!.sql(`INSERT INTO p VALUES (11, 'new'); INSERT INTO c VALUES (11, 11, 'new'); UPDATE c SET p = 11 WHERE id = 1`);
  await b!.sql(`INSERT INTO p VALUES (12, 'gone'); INSERT INTO c VALUES (12, 12, 'gone'), (13, 2, 'gone')`);
  const rep = await replicators.installed([a!, b!], { tables: ['c', 'p'] });
  const r = await rep.validate('s', { repair: true });
  expect(r.tables['public.p']!.repaired).toEqual({ b: { upserted: 1, deleted: 1, pending: 0, pendingKeys: [] } });
  expect(r.tables['public.c']!.repaired).toEqual({ b: { upserted: 2, deleted: 2, pending: 0, pendingKeys: [] } });
  await expectSameContents([a!, b!], 'p');
  await expectSameContents([a!, b!], 'c');
});

it('rejects unknown validate options, and a table missing on a database, naming them', async () => {
  const [a, b] = await createDatabases(2);
  await sqlAll([a!, b!], 'CREATE TABLE t (id int PRIMARY KEY)');
  const rep = await replicators.installed([a!, b!], { tables: ['t'] });
  await expect(rep.validate('s', { repiar: true } as never)).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  await b!.sql('ALTER TABLE t RENAME TO t_gone');
  for (const repair of [false, true]) {
    await expect(rep.validate('s', { repair })).rejects.toMatchObject({ code: 'TABLE_NOT_FOUND', sync: 's', database: 'b', table: 'public.t' });
  }
});

it('summarizes ranges alike on every database with either row hash (md5 where hashtextextended differs between servers)', async () => {
  const dbs = await createDatabases(2);
  await sqlAll(dbs, `CREATE TABLE t (id int PRIMARY KEY, v text, f float8); INSERT INTO t SELECT g, 'v' || g, g / 3.0 FROM generate_series(1, 3000) g`);
  await dbs[1]!.sql(`UPDATE t SET f = 0.5 WHERE id = 2500`);
  const ranges = [{ lo: null, hi: ['1000'] }, { lo: ['1000'], hi: ['2000'] }, { lo: ['2000'], hi: null }];
  const summaries = await Promise.all(
    dbs.map(async (db) => {
      const d = new Database('x', db.url);
      const s = await Session.open(d);
      try {
        await s.begin('repeatable read');
        const t = (await readTable(s.client, { schema: 'public', name: 't' }))!;
        return await Promise.all((['fast', 'md5'] as const).map((h) => summarize(s, t, copiedColumns(t), h, ranges)));
      } finally {
        await s.close();
        await d.close();
      }
    }),
  );
  for (const h of [0, 1]) {
    const [x, y] = [summaries[0]![h]!, summaries[1]![h]!];
    expect(x.map((r) => r.n)).toEqual([1000, 1000, 1000]);
    expect(y.map((r) => r.n)).toEqual([1000, 1000, 1000]);
    expect([x[0]!.digest === y[0]!.digest, x[1]!.digest === y[1]!.digest, x[2]!.digest === y[2]!.digest]).toEqual([true, true, false]);
  }
  expect(summaries[0]![0]![0]!.digest).not.toEqual(summaries[0]![1]![0]!.digest);
});

it('finds exactly the differing keys where the databases order the key differently (collations)', async () => {
  const [a, b] = await createDatabases(2);
  const icu = await b!.sql<{ c: string }>(`SELECT quote_ident(collname) AS c FROM pg_collation WHERE collprovider = 'i' AND collname = 'und-x-icu'`);
  if (icu.length === 0) return; // a server without ICU: nothing to order differently with
  const rows = `INSERT INTO t SELECT k, 'v' FROM (SELECT unnest(ARRAY['x', '_', 'a', 'B', 'é', 'Z', '-']) || g AS k FROM generate_series(1, 500) g) s`;
  await a!.sql(`CREATE TABLE t (k text COLLATE "C" PRIMARY KEY, v text); ${rows}`);
  await b!.sql(`CREATE TABLE t (k text COLLATE ${icu[0]!.c} PRIMARY KEY, v text); ${rows}`);
  // The two orders disagree: the key ranges of one database are not ranges of the other.
  const firstC = await a!.sql(`SELECT k FROM t ORDER BY k LIMIT 3`);
  const firstIcu = await b!.sql(`SELECT k FROM t ORDER BY k LIMIT 3`);
  expect(firstC).not.toEqual(firstIcu);
  await b!.sql(`UPDATE t SET v = 'changed' WHERE k = 'B250'; DELETE FROM t WHERE k = 'é17'; INSERT INTO t VALUES ('zz', 'extra')`);
  const rep = await replicators.installed([a!, b!], { tables: ['t'] });
  const v = await rep.validate('s');
  expect(v.tables['public.t']!.rows).toEqual({ a: 3500, b: 3500 });
  expect(sortedDifferences(v)).toEqual([
    { key: { k: 'B250' }, missingOn: [], differsOn: ['b'] },
    { key: { k: 'zz' }, missingOn: ['a'], differsOn: [] },
    { key: { k: 'é17' }, missingOn: ['b'], differsOn: [] },
  ]);
  await rep.validate('s', { repair: true });
  await expectSameContents([a!, b!], 't');
  expect((await rep.validate('s')).equal).toBe(true);
});
