/**
 * The tests every kind of non-PostgreSQL receiver passes (issue 15), against real servers:
 * changes of every sort, TRUNCATE, full copies and the one-time copy, a backlog in several
 * chunks, a failure in the middle of a chunk, and two replicators started at once. Each test
 * reads everything back from the receiver and compares it with the source.
 */
import { describe, expect, it } from 'vitest';
import { isPgferryError, type Replicator, type RowsAppliedEvent, type SyncConfig } from '../../src/index.js';
import { createDatabases, sqlAt, type TestDb } from './db.js';
import { caught } from './errors.js';
import { kick, stopReplicatorsAfterEach } from './replicators.js';
import { asText, T, T_PG, targetServers, type TargetDb, type TargetKind } from './targets.js';

/** How a test makes the receiver refuse some rows of a chunk, and stop refusing them. */
export interface Failure {
  /** The code the failed kick rejects with. */
  code: string;
  /** Makes `b` refuse rows 100..199 (or the row whose v is 'boom'); returns the database config to use, if another. */
  arm(b: TargetDb): Promise<TargetDb['config'] | void>;
  disarm(b: TargetDb): Promise<void>;
}

export function targetSuite(kind: TargetKind, failure: Failure): void {
  const servers = targetServers(kind);
  const replicators = stopReplicatorsAfterEach();

  async function sourceText(a: TestDb): Promise<string[]> {
    const rows = await sqlAt<{ id: string; v: string | null; n: string | null }>(a.url, 'SELECT id::text AS id, v, n::text AS n FROM public.t ORDER BY t.id');
    return asText(rows);
  }

  async function expectSame(a: TestDb, b: TargetDb): Promise<string[]> {
    const want = await sourceText(a);
    expect(asText(await b.rows('t', ['id'])), `${kind} contents`).toEqual(want);
    return want;
  }

  async function setup(sync: Partial<SyncConfig> = {}, roles: SyncConfig['databases'] = { a: 'source', b: 'target' }, opts: { before?: (a: TestDb) => Promise<void>; config?: TargetDb['config'] } = {}) {
    const [a] = (await createDatabases(1)) as [TestDb];
    await a.sql(T_PG);
    await opts.before?.(a);
    const b = await servers.db();
    await b.create(T);
    const rep = replicators.create();
    await rep.addDatabase('a', a.url);
    await rep.addDatabase('b', opts.config ?? b.config);
    await rep.addSync('s', { tables: ['t'], databases: roles, autokick: false, ...sync });
    await rep.install();
    return { a, b, rep };
  }

  describe(`${kind} target`, () => {
    it('inserts, updates, deletes and key changes arrive, with the same results and events as a PostgreSQL target', async () => {
      const { a, b, rep } = await setup();
      const applied: RowsAppliedEvent[] = [];
      rep.on('rows:applied', (e) => applied.push(e));
      await a.sql(`INSERT INTO t VALUES (1, 'one', 10), (2, 'two', NULL), (3, NULL, 30)`);
      const r1 = await kick(rep);
      expect(r1.status).toBe('ok');
      expect(r1.tables['public.t']).toEqual({ upserted: 3, deleted: 0, conflicts: 0 });
      expect(await expectSame(a, b)).toEqual(['1|one|10', '2|two|∅', '3|∅|30']);
      applied.length = 0;
      await a.sql(`UPDATE t SET v = NULL, n = 11 WHERE id = 1; DELETE FROM t WHERE id = 2; UPDATE t SET id = 10, v = 'ten' WHERE id = 3`);
      const r2 = await kick(rep);
      expect(r2.tables['public.t']).toEqual({ upserted: 2, deleted: 2, conflicts: 0 });
      expect(await expectSame(a, b)).toEqual(['1|∅|11', '10|ten|30']);
      expect(applied).toHaveLength(1);
      const byId = (k: Record<string, unknown>[]) => k.map((x) => Number(x.id)).sort((x, y) => x - y);
      expect(applied[0]!.target).toBe('b');
      expect(byId(applied[0]!.upserted)).toEqual([1, 10]);
      expect(byId(applied[0]!.deleted)).toEqual([2, 3]);
      expect(applied[0]!.upserted.map((k) => typeof k.id)).toEqual(['number', 'number']);
      expect((await kick(rep)).status).toBe('empty');
      expect(await expectSame(a, b)).toEqual(['1|∅|11', '10|ten|30']);
      // stop() closes the receiver's connections; a later kick opens them again.
      await rep.stop();
      await a.sql(`INSERT INTO t VALUES (4, 'after stop', 4)`);
      expect((await kick(rep)).tables['public.t']!.upserted).toBe(1);
      expect(await expectSame(a, b)).toEqual(['1|∅|11', '4|after stop|4', '10|ten|30']);
    });

    it('TRUNCATE on the source empties the table; rows written after it survive', async () => {
      const { a, b, rep } = await setup();
      await a.sql(`INSERT INTO t SELECT g, 'v' || g, g FROM generate_series(1, 50) g`);
      await kick(rep);
      expect(await expectSame(a, b)).toHaveLength(50);
      await a.sql(`TRUNCATE t; INSERT INTO t VALUES (7, 'after', 1)`);
      await kick(rep);
      expect(await expectSame(a, b)).toEqual(['7|after|1']);
    });

    it('a fullcopy receiver gets the whole table on every run, replacing what it had', async () => {
      const { a, b, rep } = await setup({}, { a: 'source', b: 'fullcopy' });
      const progress: boolean[] = [];
      rep.on('copy:progress', (e) => progress.push(e.done));
      await a.sql(`INSERT INTO t SELECT g, 'v' || g, g * 2 FROM generate_series(1, 2500) g`);
      const r = await kick(rep);
      expect(r.tables['public.t']!.upserted).toBe(2500);
      expect(await expectSame(a, b)).toHaveLength(2500);
      expect(progress.at(-1)).toBe(true);
      await b.exec(kind === 'redis' ? ['SADD', 'public.t:keys', '99999'] : `INSERT INTO t VALUES (99999, 'stray', 0)`);
      await a.sql(`DELETE FROM t WHERE id > 100; UPDATE t SET v = 'new' WHERE id = 1`);
      await kick(rep);
      expect(await expectSame(a, b)).toHaveLength(100);
    });

    it('onetimecopy fills the target once in the sync life, recorded in the target, then changes follow', async () => {
      const before = async (a: TestDb) => void (await a.sql(`INSERT INTO t SELECT g, 'old' || g, g FROM generate_series(1, 300) g`));
      const { a, b, rep } = await setup({ onetimecopy: 'always' }, undefined, { before });
      const r = await kick(rep);
      expect(r.tables['public.t']!.upserted).toBe(300);
      expect(await expectSame(a, b)).toHaveLength(300);
      await a.sql(`UPDATE t SET v = 'changed' WHERE id <= 5; DELETE FROM t WHERE id = 300`);
      await kick(rep);
      expect(await expectSame(a, b)).toHaveLength(299);
      // Another instance with the same config: the copy is done (the target's fence says so).
      await b.exec(kind === 'redis' ? ['HSET', 'public.t:1', 'v', 'edited on the target'] : `UPDATE t SET v = 'edited on the target' WHERE id = 1`);
      const other = replicators.create();
      await other.addDatabase('a', a.url);
      await other.addDatabase('b', b.config);
      await other.addSync('s', { tables: ['t'], databases: { a: 'source', b: 'target' }, autokick: false, onetimecopy: 'always' });
      expect((await kick(other)).status).toBe('empty');
      expect(asText(await b.rows('t', ['id']))[0]).toBe('1|edited on the target|1');
      // Asked for: copied again.
      await other.kick('s', { onetimecopy: 'always' });
      expect(await expectSame(a, b)).toHaveLength(299);
    });

    it('a backlog of 10,000 changed rows goes in several chunks', async () => {
      const { a, b, rep } = await setup({ chunkSize: 3000 });
      await a.sql(`INSERT INTO t SELECT g, repeat('x', g % 50) || g, g::bigint * 1000003 FROM generate_series(1, 10000) g`);
      const r1 = await kick(rep);
      expect(r1.chunks).toBe(4);
      expect(r1.totals.upserted).toBe(10_000);
      expect(await expectSame(a, b)).toHaveLength(10_000);
      await a.sql(`UPDATE t SET v = 'u' || id WHERE id % 2 = 0; DELETE FROM t WHERE id % 5 = 0; INSERT INTO t SELECT g, NULL, NULL FROM generate_series(10001, 12000) g`);
      const r2 = await kick(rep);
      expect(r2.chunks).toBeGreaterThan(1);
      expect(r2.totals.deleted).toBe(2000);
      expect(await expectSame(a, b)).toHaveLength(10_000);
    });

    it('a row refused in the middle of a chunk rolls the chunk back; the watermark stays and the next run delivers', async () => {
      const [a] = (await createDatabases(1)) as [TestDb];
      await a.sql(T_PG);
      const b = await servers.db();
      await b.create(T);
      const config = (await failure.arm(b)) ?? b.config;
      const rep = replicators.create();
      await rep.addDatabase('a', a.url);
      await rep.addDatabase('b', config);
      await rep.addSync('s', { tables: ['t'], databases: { a: 'source', b: 'target' }, autokick: false });
      await rep.install();
      await a.sql(`INSERT INTO t SELECT g, 'v' || g, g FROM generate_series(1, 10) g`);
      await kick(rep);
      const baseline = await expectSame(a, b);
      await a.sql(`INSERT INTO t SELECT g, CASE WHEN g = 150 THEN 'boom' ELSE 'v' || g END, g FROM generate_series(11, 199) g; UPDATE t SET v = 'changed' WHERE id = 1`);
      const err = await caught(rep.kick('s'));
      expect(isPgferryError(err) && err.code, String(err)).toBe(failure.code);
      expect(isPgferryError(err) && err.database).toBe('b');
      expect(String((err as Error).message)).not.toMatch(/secret|pgferry-test/);
      expect(asText(await b.rows('t', ['id']))).toEqual(baseline);
      expect((await rep.metrics()).syncs.s!.backlog.a).toBe(190);
      await failure.disarm(b);
      const r = await kick(rep);
      expect(r.totals.upserted).toBe(190);
      expect(await expectSame(a, b)).toHaveLength(199);
      expect((await rep.metrics()).syncs.s!.backlog.a).toBe(0);
    });

    it('two replicators with the same config started at once: every kick resolves, nothing surfaces as an error, one copy of every row', async () => {
      const [a] = (await createDatabases(1)) as [TestDb];
      await a.sql(T_PG);
      const b = await servers.db();
      await b.create(T);
      const errors: unknown[] = [];
      const make = async (name: string): Promise<Replicator> => {
        const rep = replicators.create({ name, checkIntervalMs: 60_000 });
        await rep.addDatabase('a', a.url);
        await rep.addDatabase('b', b.config);
        await rep.addSync('s', { tables: ['t'], databases: { a: 'source', b: 'target' }, onetimecopy: 'ifEmpty', chunkSize: 400 });
        rep.on('sync:error', (e) => errors.push(e.error));
        return rep;
      };
      const [r1, r2] = await Promise.all([make('one'), make('two')]);
      await Promise.all([r1!.install(), r2!.install()]);
      await Promise.all([r1!.start(), r2!.start()]);
      for (let round = 0; round < 5; round++) {
        await a.sql(`INSERT INTO t SELECT g, 'r${round}-' || g, g FROM generate_series(${round * 300 + 1}, ${round * 300 + 1000}) g
                     ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v, n = t.n + 1; DELETE FROM t WHERE id % 7 = ${round}`);
        const [x, y] = await Promise.all([r1!.kick('s'), r2!.kick('s')]);
        expect([x.sync, y.sync]).toEqual(['s', 's']);
      }
      await Promise.all([r1!.kick('s'), r2!.kick('s')]);
      expect(errors).toEqual([]);
      expect((await expectSame(a, b)).length).toBeGreaterThan(1000);
    });
  });

  describe(`${kind} type mapping`, () => {
    it('stores every type as README says, and holds every value of the source', async () => {
      const [a] = (await createDatabases(1)) as [TestDb];
      await a.sql(TYPES_PG);
      const b = await servers.db();
      await b.create(TYPES);
      const rep = replicators.create();
      await rep.addDatabase('a', a.url);
      await rep.addDatabase('b', b.config);
      await rep.addSync('s', { tables: ['types'], databases: { a: 'source', b: 'target' }, autokick: false });
      await rep.install();
      await a.sql(TYPES_ROWS);
      await kick(rep);
      const rows = await b.rows('types', ['id']);
      expect(rows).toEqual(EXPECTED[kind]);
      // Changes of every column back to NULL and to other values arrive too.
      await a.sql(`UPDATE types SET i = NULL, txt = NULL, bin = '\\x'::bytea, flag = false WHERE id = 1; UPDATE types SET big = -9223372036854775808, num = 0.5 WHERE id = 2`);
      await kick(rep);
      const after = await b.rows('types', ['id']);
      expect(after[0]).toEqual(UPDATED[kind][0]);
      expect(after[1]).toEqual(UPDATED[kind][1]);
    });
  });
}

const TEXT = `tab\there\nnew line "double" 'single' \\ back ñ 世界 🚢`;

const TYPES_PG = `CREATE TABLE public.types (
  id int PRIMARY KEY, i int, big bigint, num numeric, txt text, bin bytea, flag boolean,
  ts timestamptz, js json, jb jsonb, arr int[], tarr text[], f float8)`;

const TYPES_ROWS = `SET TimeZone = 'America/Los_Angeles';
  INSERT INTO types VALUES
  (1, -2147483648, 9007199254740993, 123456789012345678901234567890.123456789, ${sqlString(TEXT)}, '\\x00ff0000'::bytea, true,
   '2024-03-10 01:30:00.123456-08', '{"a": [1, 2.50], "b": null}', '{"a": [1, 2.50], "b": null}', '{1,2,NULL}', '{"a b","c,d",NULL,"q\\"t"}', 0.1),
  (2, 7, 9223372036854775807, 0.000000000000000000000000000001, '', '\\x'::bytea, false,
   '1999-12-31 23:59:59+05:30', '[]', '{}', '{}', '{}', -1.5e300),
  (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`;

function sqlString(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

const TYPES = {
  name: 'types',
  key: ['id'],
  sqlite: 'id INTEGER PRIMARY KEY, i INTEGER, big INTEGER, num TEXT, txt TEXT, bin BLOB, flag INTEGER, ts TEXT, js TEXT, jb TEXT, arr TEXT, tarr TEXT, f REAL',
  mysql: 'id INT PRIMARY KEY, i INT, big BIGINT, num DECIMAL(65,30), txt TEXT, bin BLOB, flag BOOLEAN, ts DATETIME(6), js JSON, jb JSON, arr TEXT, tarr TEXT, f DOUBLE',
};

const NULLS = { i: null, big: null, num: null, txt: null, bin: null, flag: null, ts: null, js: null, jb: null, arr: null, tarr: null, f: null };

const EXPECTED: Record<TargetKind, Record<string, unknown>[]> = {
  sqlite: [
    {
      id: 1n, i: -2147483648n, big: 9007199254740993n, num: '123456789012345678901234567890.123456789', txt: TEXT, bin: Buffer.from([0, 255, 0, 0]), flag: 1n,
      ts: '2024-03-10T09:30:00.123456Z', js: '{"a": [1, 2.50], "b": null}', jb: '{"a": [1, 2.50], "b": null}', arr: '{1,2,NULL}', tarr: '{"a b","c,d",NULL,"q\\"t"}', f: 0.1,
    },
    { id: 2n, i: 7n, big: 9223372036854775807n, num: '0.000000000000000000000000000001', txt: '', bin: Buffer.alloc(0), flag: 0n, ts: '1999-12-31T18:29:59Z', js: '[]', jb: '{}', arr: '{}', tarr: '{}', f: -1.5e300 },
    { id: 3n, ...NULLS },
  ],
  mysql: [
    {
      id: 1, i: -2147483648, big: '9007199254740993', num: '123456789012345678901234567890.123456789000000000000000000000', txt: TEXT, bin: Buffer.from([0, 255, 0, 0]), flag: 1,
      ts: '2024-03-10 09:30:00.123456', js: '{"a": [1, 2.50], "b": null}', jb: '{"a": [1, 2.50], "b": null}', arr: '{1,2,NULL}', tarr: '{"a b","c,d",NULL,"q\\"t"}', f: 0.1,
    },
    { id: 2, i: 7, big: '9223372036854775807', num: '0.000000000000000000000000000001', txt: '', bin: Buffer.alloc(0), flag: 0, ts: '1999-12-31 18:29:59.000000', js: '[]', jb: '{}', arr: '{}', tarr: '{}', f: -1.5e300 },
    { id: 3, ...NULLS },
  ],
  redis: [
    {
      id: '1', i: '-2147483648', big: '9007199254740993', num: '123456789012345678901234567890.123456789', txt: TEXT, bin: '\\x00ff0000', flag: 't',
      ts: '2024-03-10 09:30:00.123456+00', js: '{"a": [1, 2.50], "b": null}', jb: '{"a": [1, 2.50], "b": null}', arr: '{1,2,NULL}', tarr: '{"a b","c,d",NULL,"q\\"t"}', f: '0.1',
    },
    { id: '2', i: '7', big: '9223372036854775807', num: '0.000000000000000000000000000001', txt: '', bin: '\\x', flag: 'f', ts: '1999-12-31 18:29:59+00', js: '[]', jb: '{}', arr: '{}', tarr: '{}', f: '-1.5e+300' },
    { id: '3' },
  ],
};

const UPDATED: Record<TargetKind, Record<string, unknown>[]> = {
  sqlite: [
    { ...EXPECTED.sqlite[0], i: null, txt: null, bin: Buffer.alloc(0), flag: 0n },
    { ...EXPECTED.sqlite[1], big: -9223372036854775808n, num: '0.5' },
  ],
  mysql: [
    { ...EXPECTED.mysql[0], i: null, txt: null, bin: Buffer.alloc(0), flag: 0 },
    { ...EXPECTED.mysql[1], big: '-9223372036854775808', num: '0.500000000000000000000000000000' },
  ],
  redis: [
    (({ i: _i, txt: _t, ...rest }) => ({ ...rest, bin: '\\x', flag: 'f' }))(EXPECTED.redis[0] as Record<string, unknown>),
    { ...EXPECTED.redis[1], big: '-9223372036854775808', num: '0.5' },
  ],
};
