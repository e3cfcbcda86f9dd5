/**
 * Full copies: the `fullcopy` role (every run empties the target table and streams every row of
 * the source into it, one transaction per table, so readers see old or new contents, never a
 * half-filled table; no key and no capture needed), `onetimecopy` ('always', 'ifEmpty',
 * 'never') including a copy taken while writers run, `copy:progress` events, and which keys an
 * incremental sync accepts (primary key, else a non-null unique index; neither fails
 * NO_PRIMARY_KEY while a fullcopy sync of the same table works).
 */
import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { Replicator, isPgferryError, type CopyProgressEvent, type RunResult, type SyncConfig } from '../src/index.js';
import { count, createDatabases, sqlAll, tableChecksum, tableContents, type TestDb } from './helpers/db.js';
import { caught, describeError } from './helpers/errors.js';
import { declareSync, kick, type Roles } from './helpers/replicators.js';
import { sleep } from './helpers/wait.js';
import { inTransaction, startWriters, whileWriting } from './helpers/writers.js';

/** A replicator over `dbs` named a, b, c, ... with sync `s` (autokick off); not installed. */
function replicator(dbs: TestDb[], roles: Roles, sync: Omit<SyncConfig, 'databases'>): Promise<Replicator> {
  return declareSync(new Replicator(), dbs, { ...sync, databases: roles });
}

/**
 * Application writers on one database: `n` connections doing inserts, updates and deletes
 * (single statements and small multi-statement transactions) on `tables` (each with an int
 * `id` primary key and columns `v text`, `n int`) until stopped.
 */
function startTableWriters(url: string, n: number, tables: string[], keyspace: number) {
  const pick = <T,>(xs: T[]): T => xs[Math.floor(Math.random() * xs.length)]!;
  const rnd = () => 1 + Math.floor(Math.random() * keyspace);
  return startWriters(url, n, async (c) => {
    const t = pick(tables);
    const id = rnd();
    const r = Math.random();
    if (r < 0.35) {
      await c.query(`INSERT INTO ${t} (id, v, n) VALUES ($1, $2, 0) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v, n = ${t}.n + 1`, [id, `ins ${id} ${Math.random()}`]);
    } else if (r < 0.65) {
      await c.query(`UPDATE ${t} SET v = $2, n = n + 1 WHERE id = $1`, [id, `upd ${Math.random()}`]);
    } else if (r < 0.8) {
      await c.query(`DELETE FROM ${t} WHERE id = $1`, [id]);
    } else {
      await inTransaction(c, async () => {
        await c.query(`UPDATE ${t} SET n = n + 1 WHERE id BETWEEN $1 AND $1 + 5`, [id]);
        const id2 = rnd();
        await c.query(`INSERT INTO ${t} (id, v, n) VALUES ($1, 'tx', 1) ON CONFLICT (id) DO NOTHING`, [id2]);
        await c.query(`DELETE FROM ${t} WHERE id = $1`, [rnd()]);
        if (Math.random() < 0.2) await c.query(`UPDATE ${t} SET id = $2 WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM ${t} WHERE id = $2)`, [rnd(), keyspace + rnd()]);
      });
    }
  });
}

const SIMPLE = (t: string) => `CREATE TABLE public.${t} (id int PRIMARY KEY, v text, n int)`;

describe('fullcopy role', () => {
  it('copies every row on each run, for a table with no key at all, without install()', async () => {
    const dbs = await createDatabases(3);
    const [a, b, c] = dbs as [TestDb, TestDb, TestDb];
    // No key at all, duplicate rows allowed.
    await sqlAll(dbs, `CREATE TABLE public.nokey (x int, y text, z jsonb)`);
    await a.sql(`INSERT INTO nokey SELECT g % 50, 'y' || (g % 7), jsonb_build_object('g', g % 3) FROM generate_series(1, 500) g`);
    await a.sql(`INSERT INTO nokey VALUES (NULL, NULL, NULL), (NULL, NULL, NULL), (1, 'y1', '{"g": 1}')`);
    // Whatever the targets held before is replaced.
    await b.sql(`INSERT INTO nokey VALUES (999, 'stale', '{}')`);

    const rep = await replicator(dbs, { a: 'source', b: 'fullcopy', c: 'fullcopy' }, { tables: ['nokey'] });
    try {
      // No install(): a fullcopy-only sync captures nothing.
      const r1 = await kick(rep);
      expect(r1).toMatchObject({ sync: 's', status: 'ok' });
      expect(r1.tables).toHaveProperty(['public.nokey']);
      const want1 = await tableContents(a, 'public.nokey');
      expect(want1).toHaveLength(503);
      expect(await tableContents(b, 'public.nokey')).toEqual(want1);
      expect(await tableContents(c, 'public.nokey')).toEqual(want1);

      // Every kind of change on the source shows up after the next run, and hand edits on a
      // target are overwritten.
      await a.sql(`UPDATE nokey SET y = 'changed' WHERE x < 10`);
      await a.sql(`DELETE FROM nokey WHERE x BETWEEN 20 AND 29`);
      await a.sql(`INSERT INTO nokey VALUES (7, 'y7', '{"g": 1}'), (7, 'y7', '{"g": 1}')`);
      await b.sql(`DELETE FROM nokey WHERE x = 1`);
      await c.sql(`INSERT INTO nokey VALUES (-1, 'hand', NULL)`);
      const r2 = await kick(rep);
      expect(r2.status).toBe('ok');
      const want2 = await tableContents(a, 'public.nokey');
      expect(want2).toHaveLength(503 - 100 + 2);
      expect(await tableContents(b, 'public.nokey')).toEqual(want2);
      expect(await tableContents(c, 'public.nokey')).toEqual(want2);

      // A run with no change on the source still copies (and repairs the target).
      await c.sql(`DELETE FROM nokey`);
      await kick(rep);
      expect(await tableContents(c, 'public.nokey')).toEqual(want2);
    } finally {
      await rep.stop();
    }
    // Nothing was ever put on the source.
    expect(await a.sql(`SELECT count(*)::int AS n FROM pg_trigger WHERE tgrelid = 'public.nokey'::regclass`)).toEqual([{ n: 0 }]);
    expect(await a.sql(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'pgferry'`)).toEqual([{ n: 0 }]);
  });

  it('install() of a fullcopy-only sync installs nothing on the source: no trigger, no library schema', async () => {
    const [a, b] = (await createDatabases(2)) as [TestDb, TestDb];
    await sqlAll([a, b], `CREATE TABLE public.nokey (x int, y text); CREATE TABLE public.withkey (id int PRIMARY KEY, v text)`);
    await a.sql(`INSERT INTO nokey SELECT g, 'y' || g FROM generate_series(1, 100) g`);
    await a.sql(`INSERT INTO withkey SELECT g, 'v' || g FROM generate_series(1, 100) g`);
    const rep = await replicator([a, b], { a: 'source', b: 'fullcopy' }, { tables: ['nokey', 'withkey'] });
    try {
      await rep.install();
      expect(await a.sql(`SELECT count(*)::int AS n FROM pg_trigger WHERE tgrelid IN ('public.nokey'::regclass, 'public.withkey'::regclass)`)).toEqual([{ n: 0 }]);
      expect(await a.sql(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'pgferry'`)).toEqual([{ n: 0 }]);
      const r = await kick(rep);
      expect(r.status).toBe('ok');
      expect(await tableContents(b, 'public.nokey')).toEqual(await tableContents(a, 'public.nokey'));
      expect(await tableContents(b, 'public.withkey')).toEqual(await tableContents(a, 'public.withkey'));
      expect(await a.sql(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'pgferry'`)).toEqual([{ n: 0 }]);
    } finally {
      await rep.stop();
    }
  });

  it('a fullcopy database next to an incremental target: both end equal to the source', async () => {
    const dbs = await createDatabases(3);
    const [a, b, c] = dbs as [TestDb, TestDb, TestDb];
    await sqlAll(dbs, SIMPLE('t'));
    await a.sql(`INSERT INTO t SELECT g, 'pre ' || g, g FROM generate_series(1, 100) g`);
    const rep = await replicator(dbs, { a: 'source', b: 'target', c: 'fullcopy' }, { tables: ['t'] });
    try {
      await rep.install();
      await a.sql(`INSERT INTO t SELECT g, 'new ' || g, g FROM generate_series(101, 150) g`);
      await kick(rep);
      // The incremental target gets changes only; the fullcopy target gets everything.
      expect(await count(b, 't')).toBe(50);
      expect(await tableContents(c, 'public.t')).toEqual(await tableContents(a, 'public.t'));

      await a.sql(`UPDATE t SET v = 'upd' WHERE id % 10 = 0`);
      await a.sql(`DELETE FROM t WHERE id > 140`);
      await c.sql(`UPDATE t SET v = 'tampered' WHERE id = 1`);
      await kick(rep);
      expect(await tableContents(c, 'public.t')).toEqual(await tableContents(a, 'public.t'));
      expect(await b.sql(`SELECT count(*)::int AS n FROM t WHERE id > 100`)).toEqual([{ n: 40 }]);
      expect(await b.sql(`SELECT v FROM t WHERE id = 110`)).toEqual([{ v: 'upd' }]);
    } finally {
      await rep.stop();
    }
  });

  it('100k rows of mixed types: equal contents, hand edits overwritten, readers never see a partial table', async () => {
    const [a, b] = (await createDatabases(2)) as [TestDb, TestDb];
    const ddl = `CREATE TABLE public.big (
      id int NOT NULL, t text, num numeric(20,6), ts timestamptz, j jsonb, bin bytea, arr int[])`;
    await sqlAll([a, b], ddl);
    const fill = (from: number, to: number) => `
      INSERT INTO big
      SELECT g,
             CASE WHEN g % 97 = 0 THEN NULL ELSE 'text ' || g || ' ' || repeat('x', g % 40) || E' tab\\there ñ' END,
             CASE WHEN g % 89 = 0 THEN NULL ELSE (g * 1.123457)::numeric(20,6) END,
             timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute 7.25 seconds',
             jsonb_build_object('g', g, 'tags', jsonb_build_array('a', g % 7), 'q', 'say "hi"'),
             decode(md5(g::text), 'hex'),
             ARRAY[g, g % 10, -g]
        FROM generate_series(${from}, ${to}) g`;
    await a.sql(fill(1, 100_000));

    const rep = await replicator([a, b], { a: 'source', b: 'fullcopy' }, { tables: ['big'] });
    try {
      await rep.install();
      const t0 = performance.now();
      const r1 = await kick(rep);
      const firstCopyMs = performance.now() - t0;
      expect(r1.status).toBe('ok');
      const src1 = await tableChecksum(a, 'public.big');
      expect(src1.count).toBe(100_000);
      expect(await tableChecksum(b, 'public.big')).toEqual(src1);

      // Hand edits on the target: insert, update, delete.
      await b.sql(`INSERT INTO big (id, t) VALUES (-1, 'hand'), (-2, 'hand'), (-3, 'hand'), (-4, 'hand'), (-5, 'hand')`);
      await b.sql(`UPDATE big SET t = 'tampered', j = '{}' WHERE id <= 100`);
      await b.sql(`DELETE FROM big WHERE id BETWEEN 500 AND 502`);
      const oldCount = await count(b, 'big');
      expect(oldCount).toBe(100_002);
      // The source grows to 100,500 rows and changes some.
      await a.sql(fill(100_001, 100_500));
      await a.sql(`UPDATE big SET num = -num WHERE id % 1000 = 0`);
      const newCount = 100_500;

      // A reader on the target counts rows over and over while the run copies.
      const reader = new pg.Client({ connectionString: b.url });
      reader.on('error', () => {});
      await reader.connect();
      const seen: number[] = [];
      let reading = true;
      const loop = (async () => {
        while (reading) {
          const r = await reader.query<{ n: number }>(`SELECT count(*)::int AS n FROM big`);
          seen.push(r.rows[0]!.n);
        }
      })();
      let r2: RunResult;
      try {
        await sleep(20);
        r2 = await kick(rep);
      } finally {
        reading = false;
        await loop;
        await reader.end();
      }
      expect(r2.status).toBe('ok');
      expect(seen.length).toBeGreaterThan(1);
      const odd = seen.filter((n) => n !== oldCount && n !== newCount);
      expect(odd, `reader saw counts other than ${oldCount} (old) and ${newCount} (new)`).toEqual([]);
      expect(seen[0]).toBe(oldCount);

      const src2 = await tableChecksum(a, 'public.big');
      expect(src2.count).toBe(newCount);
      expect(await tableChecksum(b, 'public.big')).toEqual(src2);
      expect(await b.sql(`SELECT count(*)::int AS n FROM big WHERE id < 0 OR t = 'tampered'`)).toEqual([{ n: 0 }]);
      // Spot checks of values by type.
      expect(await b.sql(`SELECT t, num::text, ts = timestamptz '2024-01-01 00:00:00+00' + 1000 * interval '1 minute 7.25 seconds' AS ts_ok,
                                 j, encode(bin, 'hex') AS bin, arr FROM big WHERE id = 1000`)).toEqual([
        { t: 'text 1000 ' + 'x'.repeat(1000 % 40) + ' tab\there ñ', num: '-1123.457000', ts_ok: true,
          j: { g: 1000, tags: ['a', 1000 % 7], q: 'say "hi"' }, bin: (await a.sql(`SELECT md5('1000') AS h`))[0].h, arr: [1000, 0, -1000] },
      ]);
      expect(await b.sql(`SELECT t, num FROM big WHERE id = 97 * 89`)).toEqual([{ t: null, num: null }]);
      expect(firstCopyMs).toBeLessThan(20_000);
    } finally {
      await rep.stop();
    }
  });

  it('emits copy:progress during a full copy: the last one counts every row, a big table gives several', async () => {
    const [a, b] = (await createDatabases(2)) as [TestDb, TestDb];
    await sqlAll([a, b], `CREATE TABLE public.small (id int PRIMARY KEY, v text); CREATE TABLE public.wide (id int, pad text, j jsonb)`);
    await a.sql(`INSERT INTO small SELECT g, 'v' || g FROM generate_series(1, 1234) g`);
    const bigRows = 250_000;
    await a.sql(`INSERT INTO wide SELECT g, repeat(md5(g::text), 6), jsonb_build_object('g', g) FROM generate_series(1, ${bigRows}) g`);
    await a.sql(`ANALYZE small; ANALYZE wide`);

    const rep = await replicator([a, b], { a: 'source', b: 'fullcopy' }, { tables: ['small', 'wide'] });
    const events: CopyProgressEvent[] = [];
    rep.on('copy:progress', (e) => events.push({ ...e }));
    try {
      const r = await kick(rep);
      expect(r.status).toBe('ok');
      const small = events.filter((e) => e.table === 'public.small');
      const wide = events.filter((e) => e.table === 'public.wide');
      expect(small.length).toBeGreaterThanOrEqual(1);
      expect(wide.length).toBeGreaterThanOrEqual(1);
      for (const e of events) {
        expect(e).toMatchObject({ sync: 's', target: 'b' });
        expect(typeof e.rows).toBe('number');
        expect(typeof e.totalEstimate).toBe('number');
      }
      expect(small.at(-1)!.rows).toBe(1234);
      expect(wide.at(-1)!.rows).toBe(bigRows);
      // The estimate comes from the source's statistics (analyzed above): about right.
      expect(small.at(-1)!.totalEstimate).toBeGreaterThan(1234 * 0.8);
      expect(small.at(-1)!.totalEstimate).toBeLessThan(1234 * 1.2);
      expect(wide.at(-1)!.totalEstimate).toBeGreaterThan(bigRows * 0.8);
      expect(wide.at(-1)!.totalEstimate).toBeLessThan(bigRows * 1.2);
      // A big table reports along the way, with rows that never go down.
      expect(wide.length, `progress events for the big table: ${JSON.stringify(wide)}`).toBeGreaterThanOrEqual(2);
      for (let i = 1; i < wide.length; i++) expect(wide[i]!.rows).toBeGreaterThanOrEqual(wide[i - 1]!.rows);
      expect(wide.slice(0, -1).some((e) => e.rows > 0 && e.rows < bigRows)).toBe(true);
      // (Full equality is proven elsewhere; a cheap fingerprint keeps this test quick.)
      const fingerprint = `SELECT count(*)::int AS n, sum(id)::text AS ids, sum(length(pad))::text AS pads, sum(hashtext(j::text)::bigint)::text AS js FROM wide`;
      expect(await b.sql(fingerprint)).toEqual(await a.sql(fingerprint));
      expect(await tableContents(b, 'public.small')).toEqual(await tableContents(a, 'public.small'));
    } finally {
      await rep.stop();
    }
  });
});

describe('onetimecopy', () => {
  it("'always': the first run copies every table to every target under live writes, then changes flow incrementally", async () => {
    const dbs = await createDatabases(3);
    const [a, b, c] = dbs as [TestDb, TestDb, TestDb];
    await sqlAll(dbs, `${SIMPLE('t')}; ${SIMPLE('u')}`);
    // Rows written before install (never captured) must arrive through the copy.
    await a.sql(`INSERT INTO t SELECT g, 'pre ' || g, g FROM generate_series(1, 3000) g`);
    await a.sql(`INSERT INTO u SELECT g, 'pre ' || g, g FROM generate_series(1, 1500) g`);
    // Whatever the targets held is replaced by the copy.
    await b.sql(`INSERT INTO t SELECT g, 'junk', -1 FROM generate_series(2500, 4000) g`);
    await c.sql(`INSERT INTO u VALUES (1, 'junk', -1), (99999, 'junk', -1)`);

    const rep = await replicator(dbs, { a: 'source', b: 'target', c: 'target' }, { tables: ['t', 'u'], onetimecopy: 'always' });
    const progress: CopyProgressEvent[] = [];
    rep.on('copy:progress', (e) => progress.push(e));
    try {
      await rep.install();
      const writers = startTableWriters(a.url, 4, ['public.t', 'public.u'], 4000);
      await whileWriting(writers, async () => {
        await sleep(300);
        const r1 = await kick(rep);
        expect(r1.status).toBe('ok');
        // Every table was copied to every target.
        const copied = new Set(progress.map((e) => `${e.target} ${e.table}`));
        expect([...copied].sort()).toEqual(['b public.t', 'b public.u', 'c public.t', 'c public.u']);
        for (let i = 0; i < 3; i++) {
          await sleep(250);
          await kick(rep);
        }
        expect(writers.ops).toBeGreaterThan(50);
      });
      await kick(rep);
      for (const table of ['public.t', 'public.u']) {
        const want = await tableContents(a, table);
        expect(await tableContents(b, table), `${table} on b`).toEqual(want);
        expect(await tableContents(c, table), `${table} on c`).toEqual(want);
      }
      expect(await b.sql(`SELECT count(*)::int AS n FROM t WHERE v = 'junk'`)).toEqual([{ n: 0 }]);
      expect(await c.sql(`SELECT count(*)::int AS n FROM u WHERE v = 'junk'`)).toEqual([{ n: 0 }]);

      // The copy was one-time: later runs are incremental (a row only the target has stays).
      progress.length = 0;
      await b.sql(`INSERT INTO t VALUES (-7, 'only on b', 0)`);
      await a.sql(`UPDATE t SET v = 'after' WHERE id = (SELECT min(id) FROM t)`);
      const r = await kick(rep);
      expect(r.status).toBe('ok');
      expect(r.tables['public.t']).toMatchObject({ upserted: expect.any(Number), deleted: 0 });
      expect(progress).toEqual([]);
      expect(await b.sql(`SELECT v FROM t WHERE id = -7`)).toEqual([{ v: 'only on b' }]);
      expect(await tableContents(c, 'public.t')).toEqual(await tableContents(a, 'public.t'));
    } finally {
      await rep.stop();
    }
  });

  it("'ifEmpty': copies only into empty target tables; a non-empty one keeps its rows and gets changes only", async () => {
    const [a, b] = (await createDatabases(2)) as [TestDb, TestDb];
    await sqlAll([a, b], `${SIMPLE('t')}; ${SIMPLE('u')}`);
    await a.sql(`INSERT INTO t SELECT g, 'pre ' || g, g FROM generate_series(1, 200) g`);
    await a.sql(`INSERT INTO u SELECT g, 'pre ' || g, g FROM generate_series(1, 200) g`);
    // b.u is not empty: different values for some keys, and keys the source lacks.
    await b.sql(`INSERT INTO u VALUES (1, 'b own 1', 1), (2, 'b own 2', 2), (500, 'only on b', 500)`);
    const bU = await tableContents(b, 'public.u');

    const rep = await replicator([a, b], { a: 'source', b: 'target' }, { tables: ['t', 'u'], onetimecopy: 'ifEmpty' });
    try {
      await rep.install();
      const r1 = await kick(rep);
      expect(r1.status).toBe('ok');
      expect(await tableContents(b, 'public.t')).toEqual(await tableContents(a, 'public.t'));
      expect(await count(b, 't')).toBe(200);
      expect(await tableContents(b, 'public.u')).toEqual(bU);

      // Only changes flow into u; its own rows stay.
      await a.sql(`UPDATE u SET v = 'changed on a' WHERE id IN (2, 3)`);
      await a.sql(`INSERT INTO u VALUES (201, 'new', 201)`);
      await a.sql(`UPDATE t SET v = 'changed on a' WHERE id = 5`);
      const r2 = await kick(rep);
      expect(r2.status).toBe('ok');
      expect(await b.sql(`SELECT id, v FROM u ORDER BY id`)).toEqual([
        { id: 1, v: 'b own 1' },
        { id: 2, v: 'changed on a' },
        { id: 3, v: 'changed on a' },
        { id: 201, v: 'new' },
        { id: 500, v: 'only on b' },
      ]);
      expect(await tableContents(b, 'public.t')).toEqual(await tableContents(a, 'public.t'));
    } finally {
      await rep.stop();
    }
  });

  it("'never' (the default): rows that existed before install reach the target only when they change", async () => {
    const [a, b] = (await createDatabases(2)) as [TestDb, TestDb];
    await sqlAll([a, b], SIMPLE('t'));
    await a.sql(`INSERT INTO t SELECT g, 'pre ' || g, g FROM generate_series(1, 100) g`);
    for (const onetimecopy of ['never', undefined] as const) {
      await b.sql(`DELETE FROM t`);
      const rep = await replicator([a, b], { a: 'source', b: 'target' }, { tables: ['t'], ...(onetimecopy && { onetimecopy }) });
      const progress: CopyProgressEvent[] = [];
      rep.on('copy:progress', (e) => progress.push(e));
      try {
        await rep.install();
        const r1 = await kick(rep);
        expect(r1.status).toBe('empty');
        expect(await count(b, 't')).toBe(0);
        await a.sql(`UPDATE t SET n = n + 1 WHERE id IN (5, 6)`);
        await a.sql(`INSERT INTO t VALUES (1000 + ${onetimecopy ? 1 : 2}, 'new', 0)`);
        await kick(rep);
        expect((await b.sql(`SELECT id FROM t ORDER BY id`)).map((r) => r.id)).toEqual([5, 6, 1000 + (onetimecopy ? 1 : 2)]);
        expect(await kick(rep)).toMatchObject({ status: 'empty' });
        expect(await count(b, 't')).toBe(3);
        expect(progress).toEqual([]);
        await rep.uninstall();
      } finally {
        await rep.stop();
      }
    }
  });
});

describe('keys', () => {
  it('a table without a primary key but with a non-null unique index replicates incrementally by that index', async () => {
    const [a, b] = (await createDatabases(2)) as [TestDb, TestDb];
    await sqlAll([a, b], `CREATE TABLE public.uk (code text NOT NULL, v text, n int, CONSTRAINT uk_code UNIQUE (code));
                         CREATE UNIQUE INDEX uk_n ON public.uk (n)`); // n is nullable: not a key
    const rep = await replicator([a, b], { a: 'source', b: 'target' }, { tables: ['uk'] });
    const applied: any[] = [];
    rep.on('rows:applied', (e) => applied.push(e));
    try {
      await rep.install();
      await a.sql(`INSERT INTO uk SELECT 'c' || g, 'v' || g, g FROM generate_series(1, 20) g`);
      const r1 = await kick(rep);
      expect(r1).toMatchObject({ status: 'ok', tables: { 'public.uk': { upserted: 20, deleted: 0, conflicts: 0 } } });
      expect(await tableContents(b, 'public.uk')).toEqual(await tableContents(a, 'public.uk'));

      applied.length = 0;
      await a.sql(`UPDATE uk SET v = 'changed' WHERE code = 'c1'`);
      await a.sql(`DELETE FROM uk WHERE code = 'c2'`);
      await a.sql(`UPDATE uk SET code = 'c300' WHERE code = 'c3'`);
      const r2 = await kick(rep);
      expect(r2).toMatchObject({ status: 'ok', tables: { 'public.uk': { upserted: 2, deleted: 2, conflicts: 0 } } });
      expect(await tableContents(b, 'public.uk')).toEqual(await tableContents(a, 'public.uk'));
      expect(applied).toHaveLength(1);
      expect(applied[0].upserted).toEqual(expect.arrayContaining([{ code: 'c1' }, { code: 'c300' }]));
      expect(applied[0].deleted).toEqual(expect.arrayContaining([{ code: 'c2' }, { code: 'c3' }]));
    } finally {
      await rep.stop();
    }
  });

  it('with neither a primary key nor a usable unique index, every non-fullcopy role fails NO_PRIMARY_KEY; fullcopy works', async () => {
    const dbs = await createDatabases(3);
    const [a, b, c] = dbs as [TestDb, TestDb, TestDb];
    // A nullable unique column and a partial unique index are no key.
    await sqlAll(dbs, `CREATE TABLE public.nk (x int, y text UNIQUE, z int);
                       CREATE UNIQUE INDEX nk_x_partial ON public.nk (x) WHERE x > 0;
                       CREATE TABLE public.ok (id int PRIMARY KEY)`);
    await a.sql(`INSERT INTO nk SELECT g, 'y' || g, g FROM generate_series(1, 30) g`);

    const layouts: Roles[] = [
      { a: 'source', b: 'target' },
      { a: 'source', b: 'source' },
      { a: 'source', b: 'fullcopy', c: 'target' },
    ];
    for (const roles of layouts) {
      const rep = await replicator(dbs, roles, { tables: ['ok', 'nk'] });
      try {
        const err = await caught(rep.install());
        expect(isPgferryError(err), describeError(err)).toBe(true);
        expect(err.code, `${JSON.stringify(roles)}: ${describeError(err)}`).toBe('NO_PRIMARY_KEY');
        expect(err.message).toContain('public.nk');
        expect(err.table).toBe('public.nk');
        // Checked before anything was installed.
        expect(await a.sql(`SELECT count(*)::int AS n FROM pg_trigger WHERE tgrelid = 'public.ok'::regclass`)).toEqual([{ n: 0 }]);
      } finally {
        await rep.stop();
      }
    }

    // A key dropped after install: the next run fails NO_PRIMARY_KEY and changes nothing.
    await sqlAll(dbs, `CREATE TABLE public.later (id int CONSTRAINT later_pk PRIMARY KEY, v text)`);
    const rep2 = await replicator(dbs, { a: 'source', b: 'target' }, { tables: ['later'] });
    try {
      await rep2.install();
      await a.sql(`INSERT INTO later VALUES (1, 'one')`);
      await a.sql(`ALTER TABLE later DROP CONSTRAINT later_pk`);
      const err = await caught(rep2.kick('s'));
      expect(isPgferryError(err), describeError(err)).toBe(true);
      expect(err.code, describeError(err)).toBe('NO_PRIMARY_KEY');
      expect(err.message).toContain('public.later');
      expect(await count(b, 'later')).toBe(0);
    } finally {
      await rep2.stop();
    }

    // The same table as a fullcopy sync works.
    const rep3 = await replicator(dbs, { a: 'source', b: 'fullcopy', c: 'fullcopy' }, { tables: ['nk'] });
    try {
      await rep3.install();
      const r = await kick(rep3);
      expect(r.status).toBe('ok');
      const want = await tableContents(a, 'public.nk');
      expect(want).toHaveLength(30);
      expect(await tableContents(b, 'public.nk')).toEqual(want);
      expect(await tableContents(c, 'public.nk')).toEqual(want);
    } finally {
      await rep3.stop();
    }
  });
});
