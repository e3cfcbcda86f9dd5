/**
 * Partial replication and transforms: a table entry's `columns`, `where` and `transform`
 * (with `targets`) shape what reaches each receiver, in incremental runs, first copies and full
 * copies; a bad condition fails install() before anything is installed; a throwing transform
 * fails the run with nothing applied.
 */
import { describe, expect, it } from 'vitest';
import type { PgferryError, Row } from '../src/index.js';
import { createDatabases, sqlAll, tableContents, type TestDb } from './helpers/db.js';
import { caught } from './helpers/errors.js';
import { declareSync, kick, stopReplicatorsAfterEach, type TestSync } from './helpers/replicators.js';
import { sleep, waitFor } from './helpers/wait.js';

const replicators = stopReplicatorsAfterEach();

const T = 'public.t';
const DDL = `CREATE TABLE public.t (id int PRIMARY KEY, region text, v text, secret text)`;
const EU = "region = 'eu'";

/** Sorted text of column `r` of `query` on `db`: comparable with tableContents. */
async function rows(db: TestDb, query: string): Promise<string[]> {
  return (await db.sql<{ r: string }>(query)).map((x) => x.r).sort();
}

/** The source's rows of t as a receiver should hold them: `cols` of the rows matching `where`. */
const expected = (a: TestDb, cols = 'id, region, v, secret', where = EU) => rows(a, `SELECT ROW(${cols})::text AS r FROM t WHERE ${where}`);

/** `count` databases with `ddl` each (the first with `ddl`, the rest with `receiverDdl` when given). */
async function dbsWith(count: number, receiverDdl = DDL): Promise<TestDb[]> {
  const dbs = await createDatabases(count);
  await dbs[0]!.sql(DDL);
  await sqlAll(dbs.slice(1), receiverDdl);
  return dbs;
}

const seed = (a: TestDb) =>
  a.sql(`INSERT INTO t SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, 'v' || g, 's' || g FROM generate_series(1, 10) g`);

describe('partial replication', () => {
  it('where: a row updated out of the filter is deleted on the target, one updated back in arrives; key-changing updates', async () => {
    const [a, b] = (await dbsWith(2)) as [TestDb, TestDb];
    const rep = await replicators.installed([a, b], { tables: [{ table: 't', where: EU }] });
    await seed(a);
    await kick(rep);
    expect(await tableContents(b, T)).toEqual(await expected(a));
    expect(await tableContents(b, T)).toHaveLength(5);

    await a.sql(`UPDATE t SET region = 'us' WHERE id = 2`); // out
    await a.sql(`UPDATE t SET region = 'eu' WHERE id = 3`); // in
    await a.sql(`UPDATE t SET v = 'changed' WHERE id IN (4, 5)`); // in the filter, and outside it
    const r = await kick(rep);
    expect(r.tables[T]).toMatchObject({ deleted: 1 });
    expect(await tableContents(b, T)).toEqual(await expected(a));
    expect(await b.sql(`SELECT id FROM t ORDER BY id`)).toEqual([3, 4, 6, 8, 10].map((id) => ({ id })));

    await a.sql(`UPDATE t SET region = 'eu' WHERE id = 2`); // back in
    await a.sql(`UPDATE t SET id = 104 WHERE id = 4`); // key change inside the filter
    await a.sql(`UPDATE t SET id = 106, region = 'us' WHERE id = 6`); // key change out of it
    await a.sql(`UPDATE t SET id = 107, region = 'eu' WHERE id = 7`); // key change into it
    await kick(rep);
    expect(await tableContents(b, T)).toEqual(await expected(a));
    expect(await b.sql(`SELECT id FROM t ORDER BY id`)).toEqual([2, 3, 8, 10, 104, 107].map((id) => ({ id })));
  });

  it('a first copy (onetimecopy: always) honours where and columns; a receiver may lack the columns that do not travel', async () => {
    const [a, b] = (await dbsWith(2, `CREATE TABLE public.t (id int PRIMARY KEY, v text, region text)`)) as [TestDb, TestDb];
    await seed(a);
    await b.sql(`INSERT INTO t VALUES (99, 'stale', 'eu')`);
    const rep = await replicators.installed([a, b], { tables: [{ table: 't', columns: ['v', 'region'], where: EU }], onetimecopy: 'always' });
    await kick(rep);
    expect(await tableContents(b, T)).toEqual(await expected(a, 'id, v, region'));
    await a.sql(`UPDATE t SET v = 'x', secret = 'hidden' WHERE id IN (2, 3)`);
    await a.sql(`INSERT INTO t VALUES (20, 'eu', 'new', 'never sent')`);
    await kick(rep);
    expect(await tableContents(b, T)).toEqual(await expected(a, 'id, v, region'));
    expect(await tableContents(b, T)).toHaveLength(6);
  });

  it('validate({ repair }) refuses a sync with partial tables, before anything is written', async () => {
    const [a, b] = (await dbsWith(2)) as [TestDb, TestDb];
    await seed(a);
    const rep = await replicators.installed([a, b], { tables: [{ table: 't', where: EU }], onetimecopy: 'always' });
    await kick(rep);
    const before = await tableContents(b, T);
    const err = await rep.validate('s', { repair: true }).then(
      () => null,
      (e: PgferryError) => e,
    );
    expect(err?.code).toBe('CONFIG_INVALID');
    expect(err?.message).toBe(
      `validate(): repair is not supported for sync "s": public.t has columns, where or transform, and a repair would write whole, untransformed rows. Validate without repair, or copy the table again (kick with onetimecopy: 'always').`,
    );
    expect(await tableContents(b, T)).toEqual(before);
  });

  it('a fullcopy target gets the filtered rows and only the listed columns', async () => {
    const [a, c] = (await dbsWith(2, `CREATE TABLE public.t (id int PRIMARY KEY, region text, v text)`)) as [TestDb, TestDb];
    await seed(a);
    await c.sql(`INSERT INTO t VALUES (1, 'us', 'old')`);
    const rep = await replicators.installed([a, c], { tables: [{ table: 't', columns: ['region', 'v'], where: EU }], databases: { a: 'source', c: 'fullcopy' } });
    await kick(rep);
    expect(await tableContents(c, T)).toEqual(await expected(a, 'id, region, v'));
    await a.sql(`UPDATE t SET region = 'eu' WHERE id = 1`);
    await kick(rep);
    expect(await tableContents(c, T)).toEqual(await expected(a, 'id, region, v'));
    expect(await tableContents(c, T)).toHaveLength(6);
  });
});

const TYPED = `CREATE TABLE public.t (id int PRIMARY KEY, region text, v text, secret text, at timestamptz, doc jsonb, amount numeric, tags int[])`;

describe('transforms', () => {
  it('masks a column and leaves out keys it returns null for, in first copies and incremental runs; values keep their exact text', async () => {
    const [a, b] = (await createDatabases(2)) as [TestDb, TestDb];
    await sqlAll([a, b], TYPED);
    const insert = (ids: string) =>
      a.sql(`INSERT INTO t SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, 'v' || g, 's' || g, '2024-02-29 23:59:59.123456+00', '{"n": 1.50, "big": 12345678901234567890}', 1.10, ARRAY[g, 2] FROM ${ids} g`);
    await insert('generate_series(1, 6)');
    const seen: string[] = [];
    const rep = await replicators.installed([a, b], {
      tables: [{ table: 't', transform: (row, ctx) => (seen.push(`${ctx.sync}/${ctx.table}/${ctx.target}`), row.region === 'us' ? null : { ...row, secret: '***' }) }],
      onetimecopy: 'always',
    });
    await kick(rep);
    const want = () => expected(a, `id, region, v, '***'::text, at, doc, amount, tags`);
    expect(await tableContents(b, T)).toEqual(await want());
    expect(await tableContents(b, T)).toHaveLength(3);
    expect(new Set(seen)).toEqual(new Set(['s/public.t/b']));

    await insert('generate_series(7, 8)');
    await a.sql(`UPDATE t SET v = 'w' WHERE id IN (2, 3)`);
    await a.sql(`DELETE FROM t WHERE id = 4`);
    await kick(rep);
    expect(await tableContents(b, T)).toEqual(await want());

    // A key the transform now leaves out is neither written nor deleted on the target.
    await a.sql(`UPDATE t SET region = 'us', v = 'gone?' WHERE id = 6`);
    await kick(rep);
    expect(await b.sql(`SELECT id, region, v, secret FROM t WHERE id = 6`)).toEqual([{ id: 6, region: 'eu', v: 'v6', secret: '***' }]);
  });

  it('targets limits a transform to some receivers; the others get the rows as they are', async () => {
    const [a, b, c] = (await dbsWith(3)) as [TestDb, TestDb, TestDb];
    const rep = await replicators.installed([a, b, c], {
      tables: [{ table: 't', transform: (row) => ({ ...row, secret: null }), targets: ['b'] }],
    });
    await seed(a);
    await kick(rep);
    expect(await tableContents(b, T)).toEqual(await expected(a, 'id, region, v, NULL::text', 'true'));
    expect(await tableContents(c, T)).toEqual(await tableContents(a, T));
  });

  it('an async transform', async () => {
    const [a, b] = (await dbsWith(2)) as [TestDb, TestDb];
    const rep = await replicators.installed([a, b], {
      tables: [{ table: 't', where: EU, transform: async (row: Row) => (await sleep(1), { ...row, v: String(row.v).toUpperCase() }) }],
    });
    await seed(a);
    await kick(rep);
    expect(await tableContents(b, T)).toEqual(await expected(a, 'id, region, upper(v), secret'));
  });

  it('a transform that throws fails the run naming the table, target and key; nothing of the run is applied; the next run after the fix delivers', async () => {
    const [a, b] = (await createDatabases(2)) as [TestDb, TestDb];
    await sqlAll([a, b], `${DDL}; CREATE TABLE public.u (id int PRIMARY KEY, v text)`);
    let broken = true;
    const rep = await replicators.installed([a, b], {
      tables: ['u', { table: 't', transform: (row) => {
        if (broken && row.id === 3) throw new Error('cannot mask this one');
        return { ...row, secret: '***' };
      } }],
    });
    await seed(a);
    await a.sql(`INSERT INTO u VALUES (1, 'plain')`);
    const err = await caught(rep.kick('s'));
    expect(err).toMatchObject({ code: 'RUN_FAILED', sync: 's', table: T, database: 'b' });
    expect(err.message).toContain('public.t');
    expect(err.message).toContain('"b"');
    expect(err.message).toContain('id=3');
    expect(err.message).toContain('cannot mask this one');
    expect(await tableContents(b, T)).toEqual([]);
    expect(await tableContents(b, 'public.u')).toEqual([]);

    broken = false;
    await kick(rep);
    expect(await tableContents(b, T)).toEqual(await expected(a, `id, region, v, '***'::text`, 'true'));
    expect(await tableContents(b, 'public.u')).toEqual(['(1,plain)']);
  });
});

describe('configuration checked on the servers', () => {
  it('a where that does not parse fails install() with CONFIG_INVALID naming the sync, table and the server message; nothing is installed', async () => {
    const [a, b] = (await dbsWith(2)) as [TestDb, TestDb];
    for (const where of ['region = ', 'no_such_column = 1', 'id + 1', 'true); DROP TABLE t; SELECT (1']) {
      const rep = await declareSync(replicators.create(), [a, b], { tables: [{ table: 't', where }] });
      const err = await caught(rep.install());
      expect(err).toMatchObject({ code: 'CONFIG_INVALID', sync: 's', table: T });
      expect(err.message).toContain('tables.0.where');
      expect(err.message).toContain('public.t');
      expect(err.message).toMatch(/syntax error|does not exist|must be type boolean|multiple commands/);
      expect(await a.sql(`SELECT count(*)::int AS n FROM t`)).toEqual([{ n: 0 }]); // still there
      expect(await a.sql(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'pgferry'`)).toEqual([{ n: 0 }]);
      expect(await a.sql(`SELECT count(*)::int AS n FROM pg_trigger WHERE tgrelid = 'public.t'::regclass AND NOT tgisinternal`)).toEqual([{ n: 0 }]);
      expect(await b.sql(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'pgferry'`)).toEqual([{ n: 0 }]);
      await rep.stop();
    }
  });

  it('a trailing -- comment in a where cannot swallow what follows it', async () => {
    const [a, b] = (await dbsWith(2)) as [TestDb, TestDb];
    const rep = await replicators.installed([a, b], { tables: [{ table: 't', where: "region = 'eu' -- EU only" }], onetimecopy: 'always' });
    await seed(a);
    await kick(rep);
    await a.sql(`UPDATE t SET region = 'us' WHERE id = 2`);
    await kick(rep);
    expect(await tableContents(b, T)).toEqual(await expected(a));
  });

  it('a listed column missing on the source fails install() with CONFIG_INVALID naming tables.N.columns', async () => {
    const [a, b] = (await dbsWith(2)) as [TestDb, TestDb];
    const rep = await declareSync(replicators.create(), [a, b], { tables: [{ table: 't', columns: ['v', 'nope'] }] });
    const err = await caught(rep.install());
    expect(err).toMatchObject({ code: 'CONFIG_INVALID', issues: [{ path: 'tables.0.columns' }] });
    expect(err.message).toContain('"nope"');
    expect(await a.sql(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'pgferry'`)).toEqual([{ n: 0 }]);
  });
});

describe('two instances', () => {
  it('two replicators with the same config, started at once, replicate a filtered, transformed table', async () => {
    const [a, b] = (await dbsWith(2)) as [TestDb, TestDb];
    const sync: TestSync = { tables: [{ table: 't', where: EU, columns: ['region', 'v'], transform: (row) => ({ ...row, v: `m:${String(row.v)}` }) }], autokick: true };
    const reps = await Promise.all([0, 1].map((i) => declareSync(replicators.create({ name: `r${i}`, autokickDelayMs: 5 }), [a, b], sync)));
    await reps[0]!.install();
    await Promise.all(reps.map((r) => r.start()));
    for (let i = 0; i < 20; i++) {
      await a.sql(`INSERT INTO t SELECT g, CASE WHEN g % 3 = 0 THEN 'us' ELSE 'eu' END, 'v' || g, 'x' FROM generate_series($1::int * 10 + 1, $1::int * 10 + 10) g`, [i]);
      if (i % 5 === 4) await a.sql(`UPDATE t SET region = 'us' WHERE id % 7 = 0`);
    }
    const want = await expected(a, `id, region, 'm:' || v, NULL::text`);
    await waitFor('the target to hold the filtered, transformed rows', async () => JSON.stringify(await tableContents(b, T)) === JSON.stringify(want), { timeoutMs: 20_000 });
    expect(await tableContents(b, T)).toEqual(want);
    for (const r of reps) await r.stop();
  });
});
