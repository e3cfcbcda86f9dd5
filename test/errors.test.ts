/**
 * Clear failure, nothing lost: tables without a usable key, missing tables and column
 * mismatches fail with codes that name the table (and column), leave every database as it
 * was, and keep every pending delta for the next run.
 */
import { describe, expect, it } from 'vitest';
import { isPgferryError, PgferryError } from '../src/index.js';
import { createDatabases, sqlAll, tableContents, type TestDb } from './helpers/db.js';
import { caught } from './helpers/errors.js';
import { addDatabases, stopReplicatorsAfterEach } from './helpers/replicators.js';

const replicators = stopReplicatorsAfterEach();

/** Replicator (stopped after the test) with dbs[i] added under names[i]. */
const replicatorFor = (dbs: TestDb[], names: string[]) => addDatabases(replicators.create(), dbs, names);

async function userTriggers(db: TestDb): Promise<number> {
  const r = await db.sql<{ n: number }>('SELECT count(*)::int AS n FROM pg_trigger WHERE NOT tgisinternal');
  return r[0]!.n;
}

async function librarySchemas(db: TestDb): Promise<number> {
  const r = await db.sql<{ n: number }>(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'pgferry'`);
  return r[0]!.n;
}

async function expectNothingInstalled(dbs: TestDb[]): Promise<void> {
  for (const db of dbs) {
    expect(await userTriggers(db), `triggers in ${db.name}`).toBe(0);
    expect(await librarySchemas(db), `pgferry schema in ${db.name}`).toBe(0);
  }
}

describe('tables without a usable key', () => {
  it('install fails NO_PRIMARY_KEY naming the table, and installs nothing (even with a good table)', async () => {
    const dbs = await createDatabases(2);
    await sqlAll(dbs, `
      CREATE TABLE public.good (id int PRIMARY KEY, v text);
      CREATE TABLE public.nokey (a int, b text);
    `);
    const rep = await replicatorFor(dbs, ['a', 'b']);
    await rep.addSync('s', { tables: ['good', 'nokey'], databases: { a: 'source', b: 'target' }, autokick: false });

    const err = await caught(() => rep.install());
    expect(isPgferryError(err)).toBe(true);
    expect(err).toBeInstanceOf(PgferryError);
    expect(err).toMatchObject({ code: 'NO_PRIMARY_KEY' });
    expect(err.message).toContain('public.nokey');
    await expectNothingInstalled(dbs);

    // A kick finds nothing installed.
    await expect(rep.kick('s')).rejects.toMatchObject({ code: 'NOT_INSTALLED' });

    // Once the table has a key, the same sync installs and replicates.
    await sqlAll(dbs, 'ALTER TABLE public.nokey ADD PRIMARY KEY (a)');
    await rep.install();
    await dbs[0]!.sql(`INSERT INTO public.nokey VALUES (1, 'x'), (2, 'y'); INSERT INTO public.good VALUES (1, 'g')`);
    await rep.kick('s');
    expect(await tableContents(dbs[1]!, 'public.nokey')).toEqual(['(1,x)', '(2,y)']);
    expect(await tableContents(dbs[1]!, 'public.good')).toEqual(['(1,g)']);
  });

  it('install fails NO_PRIMARY_KEY for a sync with only the keyless table', async () => {
    const dbs = await createDatabases(2);
    await sqlAll(dbs, 'CREATE TABLE public.nokey (a int, b text)');
    const rep = await replicatorFor(dbs, ['a', 'b']);
    await rep.addSync('s', { tables: ['nokey'], databases: { a: 'source', b: 'target' }, autokick: false });
    const p = rep.install();
    await expect(p).rejects.toMatchObject({ code: 'NO_PRIMARY_KEY' });
    await expect(p).rejects.toThrow(/public\.nokey/);
    await expectNothingInstalled(dbs);
  });

  it('a UNIQUE index over a nullable column is not a usable key', async () => {
    const dbs = await createDatabases(2);
    await sqlAll(dbs, `
      CREATE TABLE public.uknull (code text, v text);
      CREATE UNIQUE INDEX uknull_code ON public.uknull (code);
    `);
    const rep = await replicatorFor(dbs, ['a', 'b']);
    await rep.addSync('s', { tables: ['uknull'], databases: { a: 'source', b: 'target' }, autokick: false });
    const p = rep.install();
    await expect(p).rejects.toMatchObject({ code: 'NO_PRIMARY_KEY' });
    await expect(p).rejects.toThrow(/public\.uknull/);
    await expectNothingInstalled(dbs);
  });

  it('a table with no primary key but a UNIQUE index over NOT NULL columns replicates by that key', async () => {
    const dbs = await createDatabases(2);
    await sqlAll(dbs, `
      CREATE TABLE public.uk (code text NOT NULL, region int NOT NULL, v text);
      CREATE UNIQUE INDEX uk_code_region ON public.uk (code, region);
    `);
    const rep = await replicatorFor(dbs, ['a', 'b']);
    await rep.addSync('s', { tables: ['uk'], databases: { a: 'source', b: 'target' }, autokick: false });
    await rep.install();
    expect(await userTriggers(dbs[0]!)).toBeGreaterThan(0);

    await dbs[0]!.sql(`INSERT INTO public.uk VALUES ('x', 1, 'one'), ('x', 2, 'two'), ('y', 1, 'three'), ('z', 9, 'gone')`);
    await rep.kick('s');
    expect(await tableContents(dbs[1]!, 'public.uk')).toEqual(['(x,1,one)', '(x,2,two)', '(y,1,three)', '(z,9,gone)']);

    await dbs[0]!.sql(`
      UPDATE public.uk SET v = 'ONE' WHERE code = 'x' AND region = 1;
      UPDATE public.uk SET code = 'w' WHERE code = 'y' AND region = 1;
      DELETE FROM public.uk WHERE code = 'z';
    `);
    await rep.kick('s');
    const expected = ['(w,1,three)', '(x,1,ONE)', '(x,2,two)'];
    expect(await tableContents(dbs[0]!, 'public.uk')).toEqual(expected);
    expect(await tableContents(dbs[1]!, 'public.uk')).toEqual(expected);
  });
});

describe('missing tables', () => {
  it('fails TABLE_NOT_FOUND naming the table, and installs nothing', async () => {
    const dbs = await createDatabases(2);
    await sqlAll(dbs, 'CREATE TABLE public.good (id int PRIMARY KEY, v text)');
    const rep = await replicatorFor(dbs, ['a', 'b']);
    // Whether addSync already looks at the database or install does is the library's choice.
    const err = await caught(async () => {
      await rep.addSync('s', { tables: ['good', 'missing'], databases: { a: 'source', b: 'target' }, autokick: false });
      await rep.install();
    });
    expect(isPgferryError(err)).toBe(true);
    expect(err).toMatchObject({ code: 'TABLE_NOT_FOUND' });
    expect(err.message).toContain('public.missing');
    await expectNothingInstalled(dbs);
  });
});

describe('column mismatch between databases', () => {
  it('fails SCHEMA_MISMATCH naming table and column, leaves the target unchanged, keeps the deltas', async () => {
    const [src, dst] = await createDatabases(2);
    await src!.sql(`
      CREATE TABLE public.items (id int PRIMARY KEY, name text, qty int);
      INSERT INTO public.items VALUES (1, 'a', NULL), (2, 'b', NULL);
    `);
    await dst!.sql(`
      CREATE TABLE public.items (id int PRIMARY KEY, name text);
      INSERT INTO public.items VALUES (1, 'a'), (2, 'b');
    `);
    const rep = await replicatorFor([src!, dst!], ['a', 'b']);
    await rep.addSync('s', { tables: ['items'], databases: { a: 'source', b: 'target' }, autokick: false });
    await rep.install();

    await src!.sql(`
      INSERT INTO public.items VALUES (3, 'c', 3), (4, 'd', 4);
      UPDATE public.items SET name = 'a2', qty = 1 WHERE id = 1;
      DELETE FROM public.items WHERE id = 2;
    `);
    const before = await tableContents(dst!, 'public.items');
    expect(before).toEqual(['(1,a)', '(2,b)']);

    const err = await caught(() => rep.kick('s'));
    expect(isPgferryError(err)).toBe(true);
    expect(err).toMatchObject({ code: 'SCHEMA_MISMATCH' });
    expect(err.message).toContain('public.items');
    expect(err.message).toContain('qty');
    expect(await tableContents(dst!, 'public.items')).toEqual(before);

    // Still failing on a second try: nothing moved in between.
    await expect(rep.kick('s')).rejects.toMatchObject({ code: 'SCHEMA_MISMATCH' });
    expect(await tableContents(dst!, 'public.items')).toEqual(before);

    await dst!.sql('ALTER TABLE public.items ADD COLUMN qty int');
    const run = await rep.kick('s');
    expect(run).toMatchObject({ sync: 's', status: 'ok', tables: { 'public.items': { upserted: 3, deleted: 1 } } });
    const expected = ['(1,a2,1)', '(3,c,3)', '(4,d,4)'];
    expect(await tableContents(src!, 'public.items')).toEqual(expected);
    expect(await tableContents(dst!, 'public.items')).toEqual(expected);
  });

  it('a failure on one target leaves every target unchanged; after the fix both receive everything', async () => {
    const dbs = await createDatabases(3);
    const [src, t1, t2] = dbs as [TestDb, TestDb, TestDb];
    await sqlAll(dbs, `
      CREATE TABLE public.items (id int PRIMARY KEY, name text, qty int);
      INSERT INTO public.items VALUES (1, 'a', NULL), (2, 'b', NULL), (5, 'e', NULL);
    `);
    const rep = await replicatorFor(dbs, ['origin', 'replica1', 'replica2']);
    await rep.addSync('s', {
      tables: ['items'],
      databases: { origin: 'source', replica1: 'target', replica2: 'target' },
      autokick: false,
    });
    await rep.install();
    // The column goes missing on one target after install.
    await t2.sql('ALTER TABLE public.items DROP COLUMN qty');

    await src.sql(`
      INSERT INTO public.items VALUES (3, 'c', 3), (4, 'd', 4);
      UPDATE public.items SET name = 'a2', qty = 1 WHERE id = 1;
      DELETE FROM public.items WHERE id = 2;
    `);
    const before1 = await tableContents(t1, 'public.items');
    const before2 = await tableContents(t2, 'public.items');
    expect(before1).toEqual(['(1,a,)', '(2,b,)', '(5,e,)']);
    expect(before2).toEqual(['(1,a)', '(2,b)', '(5,e)']);

    const err = await caught(() => rep.kick('s'));
    expect(err).toMatchObject({ code: 'SCHEMA_MISMATCH' });
    expect(err.message).toContain('public.items');
    expect(err.message).toContain('qty');
    expect(err.message).toContain('replica2');
    expect(await tableContents(t1, 'public.items')).toEqual(before1);
    expect(await tableContents(t2, 'public.items')).toEqual(before2);

    await t2.sql('ALTER TABLE public.items ADD COLUMN qty int');
    await rep.kick('s');
    const expected = ['(1,a2,1)', '(3,c,3)', '(4,d,4)', '(5,e,)'];
    expect(await tableContents(src, 'public.items')).toEqual(expected);
    expect(await tableContents(t1, 'public.items')).toEqual(expected);
    expect(await tableContents(t2, 'public.items')).toEqual(expected);
  });
});

describe('install state', () => {
  it('kick of a sync that is not installed rejects NOT_INSTALLED', async () => {
    const dbs = await createDatabases(2);
    await sqlAll(dbs, 'CREATE TABLE public.good (id int PRIMARY KEY, v text)');
    const rep = await replicatorFor(dbs, ['a', 'b']);
    await rep.addSync('s', { tables: ['good'], databases: { a: 'source', b: 'target' }, autokick: false });
    const p = rep.kick('s');
    await expect(p).rejects.toMatchObject({ code: 'NOT_INSTALLED' });
    await expect(p).rejects.toBeInstanceOf(PgferryError);
    await expectNothingInstalled(dbs);
  });

  it('installing twice is a no-op, and uninstall removes triggers and the library schema', async () => {
    const dbs = await createDatabases(2);
    const [a, b] = dbs as [TestDb, TestDb];
    await sqlAll(dbs, `
      CREATE TABLE public.good (id int PRIMARY KEY, v text);
      CREATE TABLE public.other (id int PRIMARY KEY, v text);
    `);
    const rep = await replicatorFor(dbs, ['a', 'b']);
    await rep.addSync('s', { tables: ['good', 'other'], databases: { a: 'source', b: 'target' }, autokick: false });

    await rep.install();
    const triggers = await userTriggers(a);
    expect(triggers).toBeGreaterThan(0);
    expect(await librarySchemas(a)).toBe(1);
    // Both tables carry capture triggers.
    const onTables = await a.sql<{ t: string }>(
      `SELECT DISTINCT tgrelid::regclass::text AS t FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1`,
    );
    expect(onTables.map((r) => r.t)).toEqual(['good', 'other']);

    await rep.install();
    expect(await userTriggers(a)).toBe(triggers);
    expect(await librarySchemas(a)).toBe(1);

    await a.sql(`INSERT INTO public.good VALUES (1, 'x')`);
    await rep.kick('s');
    expect(await tableContents(b, 'public.good')).toEqual(['(1,x)']);

    await rep.uninstall();
    await expectNothingInstalled(dbs);
    await expect(rep.kick('s')).rejects.toMatchObject({ code: 'NOT_INSTALLED' });

    // Uninstalling again is harmless.
    await rep.uninstall();
    await expectNothingInstalled(dbs);
  });
});
