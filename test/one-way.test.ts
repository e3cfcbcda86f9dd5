/**
 * One-way replication (source → target): every kind of change arrives, the run result and the
 * events have the documented shape, one source feeds two targets, and applying the same batch
 * twice changes nothing.
 */
import { describe, expect, it } from 'vitest';
import type { Replicator } from '../src/index.js';
import { createDatabases, sqlAll, tableChecksum, tableContents, type TestDb } from './helpers/db.js';
import { kick, stopReplicatorsAfterEach } from './helpers/replicators.js';

const replicators = stopReplicatorsAfterEach();

/** A replicator over `dbs` (`a` the source; `b`, `c`, ... targets) with sync `s` over `tables` (autokick off), installed. */
const setup = (dbs: TestDb[], tables: string[]) => replicators.installed(dbs, { tables });

const T = 'public.t';
const SCHEMA_T = `CREATE TABLE public.t (id int PRIMARY KEY, v text, n int)`;

/** Two fresh databases with public.t, and a replicator a → b over `tables` (see `setup`). */
async function pairWithT(tables = ['t']): Promise<{ a: TestDb; b: TestDb; rep: Replicator }> {
  const [a, b] = await createDatabases(2);
  await sqlAll([a!, b!], SCHEMA_T);
  return { a: a!, b: b!, rep: await setup([a!, b!], tables) };
}

async function expectSame(src: TestDb, dst: TestDb, table = T): Promise<string[]> {
  const want = await tableContents(src, table);
  const got = await tableContents(dst, table);
  expect(got).toEqual(want);
  return got;
}

function sortKeys<K extends Record<string, unknown>>(keys: K[]): K[] {
  return [...keys].sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y)));
}

describe('one-way replication', () => {
  it('a kick with nothing pending gives status empty', async () => {
    const dbs = await createDatabases(2);
    await sqlAll(dbs, SCHEMA_T);
    const rep = await setup(dbs, ['t']);
    const r = await kick(rep);
    expect(r.sync).toBe('s');
    expect(r.status).toBe('empty');
    expect(typeof r.durationMs).toBe('number');
    expect(await tableContents(dbs[1]!, T)).toEqual([]);
  });

  it('INSERT, UPDATE and DELETE arrive, with counts in the run result', async () => {
    const { a, b, rep } = await pairWithT(['public.t']);

    for (let i = 1; i <= 10; i++) await a!.sql(`INSERT INTO t VALUES ($1, $2, $3)`, [i, `row ${i}`, i * 10]);
    const r1 = await kick(rep);
    expect(r1).toMatchObject({ sync: 's', status: 'ok', tables: { [T]: { upserted: 10, deleted: 0, conflicts: 0 } } });
    expect(typeof r1.durationMs).toBe('number');
    expect(r1.durationMs).toBeGreaterThanOrEqual(0);
    const after1 = await expectSame(a!, b!);
    expect(after1).toHaveLength(10);
    expect(await b!.sql(`SELECT v, n FROM t WHERE id = 7`)).toEqual([{ v: 'row 7', n: 70 }]);

    await a!.sql(`UPDATE t SET v = 'changed ' || id, n = -n WHERE id IN (2, 4, 6)`);
    await a!.sql(`DELETE FROM t WHERE id IN (9, 10)`);
    const r2 = await kick(rep);
    expect(r2).toMatchObject({ sync: 's', status: 'ok', tables: { [T]: { upserted: 3, deleted: 2, conflicts: 0 } } });
    const after2 = await expectSame(a!, b!);
    expect(after2).toHaveLength(8);
    expect(await b!.sql(`SELECT id, v, n FROM t WHERE id IN (2, 4, 6, 9, 10) ORDER BY id`)).toEqual([
      { id: 2, v: 'changed 2', n: -20 },
      { id: 4, v: 'changed 4', n: -40 },
      { id: 6, v: 'changed 6', n: -60 },
    ]);
    // Untouched rows are still as first written.
    expect(await b!.sql(`SELECT v, n FROM t WHERE id = 1`)).toEqual([{ v: 'row 1', n: 10 }]);

    // Setting a column to NULL is a change too.
    await a!.sql(`UPDATE t SET v = NULL WHERE id = 1`);
    const r3 = await kick(rep);
    expect(r3).toMatchObject({ status: 'ok', tables: { [T]: { upserted: 1, deleted: 0, conflicts: 0 } } });
    expect(await b!.sql(`SELECT v, n FROM t WHERE id = 1`)).toEqual([{ v: null, n: 10 }]);
    await expectSame(a!, b!);

    const r4 = await kick(rep);
    expect(r4.status).toBe('empty');
    expect(await expectSame(a!, b!)).toHaveLength(8);
  });

  it('a key-changing UPDATE moves the row: old key gone, new key present', async () => {
    const { a, b, rep } = await pairWithT();
    await a!.sql(`INSERT INTO t SELECT g, 'v' || g, g FROM generate_series(1, 5) g`);
    await kick(rep);
    expect(await tableContents(b!, T)).toHaveLength(5);

    await a!.sql(`UPDATE t SET id = 100 WHERE id = 1`);
    const r = await kick(rep);
    expect(r).toMatchObject({ status: 'ok', tables: { [T]: { upserted: 1, deleted: 1, conflicts: 0 } } });
    expect(await b!.sql(`SELECT id FROM t WHERE id IN (1, 100)`)).toEqual([{ id: 100 }]);
    expect(await b!.sql(`SELECT v, n FROM t WHERE id = 100`)).toEqual([{ v: 'v1', n: 1 }]);
    await expectSame(a!, b!);

    // Swap keys within one transaction: 2 → 200, 3 → 2, 200 → 3.
    await a!.sql(`BEGIN; UPDATE t SET id = 200 WHERE id = 2; UPDATE t SET id = 2 WHERE id = 3; UPDATE t SET id = 3 WHERE id = 200; COMMIT;`);
    await kick(rep);
    expect(await b!.sql(`SELECT id, v FROM t WHERE id IN (2, 3, 200) ORDER BY id`)).toEqual([
      { id: 2, v: 'v3' },
      { id: 3, v: 'v2' },
    ]);
    // Shift every key in one multi-row statement.
    await a!.sql(`UPDATE t SET id = id + 1000`);
    await kick(rep);
    const rows = await expectSame(a!, b!);
    expect(rows).toHaveLength(5);
    expect((await b!.sql(`SELECT array_agg(id ORDER BY id) AS ids FROM t`))[0].ids).toEqual([1002, 1003, 1004, 1005, 1100]);
  });

  it('many changes to one key in one transaction arrive as the final state', async () => {
    const { a, b, rep } = await pairWithT();
    await a!.sql(`INSERT INTO t VALUES (1, 'keep', 1), (2, 'gone', 2)`);
    await kick(rep);

    await a!.sql(`
      BEGIN;
      INSERT INTO t VALUES (5, 'first', 1);
      UPDATE t SET v = 'second', n = 2 WHERE id = 5;
      UPDATE t SET v = 'third', n = 3 WHERE id = 5;
      UPDATE t SET n = n + 10 WHERE id = 5;
      DELETE FROM t WHERE id = 5;
      INSERT INTO t VALUES (5, 'reborn', 50);
      UPDATE t SET v = v || '!' WHERE id = 5;
      -- a key that lives and dies inside the transaction
      INSERT INTO t VALUES (6, 'ephemeral', 6);
      UPDATE t SET v = 'still ephemeral' WHERE id = 6;
      DELETE FROM t WHERE id = 6;
      -- an existing key deleted and re-inserted with other values
      DELETE FROM t WHERE id = 1;
      INSERT INTO t VALUES (1, 'replaced', 100);
      -- an existing key updated then deleted
      UPDATE t SET v = 'about to go' WHERE id = 2;
      DELETE FROM t WHERE id = 2;
      COMMIT;
    `);
    const r = await kick(rep);
    expect(r.status).toBe('ok');
    const counts = r.tables[T]!;
    expect(counts.conflicts).toBe(0);
    expect(counts.upserted).toBe(2); // keys 1 and 5
    expect(counts.deleted).toBeGreaterThanOrEqual(1); // key 2 (key 6 never reached the target)
    expect(counts.deleted).toBeLessThanOrEqual(2);
    expect(await b!.sql(`SELECT id, v, n FROM t ORDER BY id`)).toEqual([
      { id: 1, v: 'replaced', n: 100 },
      { id: 5, v: 'reborn!', n: 50 },
    ]);
    await expectSame(a!, b!);

    // The same key changed by many separate transactions between two runs.
    for (let i = 0; i < 20; i++) await a!.sql(`UPDATE t SET n = n + 1, v = 'tx ' || ${i} WHERE id = 5`);
    await a!.sql(`DELETE FROM t WHERE id = 1`);
    await a!.sql(`INSERT INTO t VALUES (1, 'back again', 7)`);
    const r2 = await kick(rep);
    expect(r2).toMatchObject({ status: 'ok', tables: { [T]: { upserted: 2, deleted: 0, conflicts: 0 } } });
    expect(await b!.sql(`SELECT id, v, n FROM t ORDER BY id`)).toEqual([
      { id: 1, v: 'back again', n: 7 },
      { id: 5, v: 'tx 19', n: 70 },
    ]);
    await expectSame(a!, b!);
  });

  it('multi-row statements on thousands of rows arrive', async () => {
    const { a, b, rep } = await pairWithT();
    await a!.sql(`INSERT INTO t SELECT g, md5(g::text), g FROM generate_series(1, 5000) g`);
    const r1 = await kick(rep);
    expect(r1).toMatchObject({ status: 'ok', tables: { [T]: { upserted: 5000, deleted: 0, conflicts: 0 } } });
    let sb = await tableChecksum(b!, T);
    expect(sb).toEqual(await tableChecksum(a!, T));
    expect(sb.count).toBe(5000);

    await a!.sql(`UPDATE t SET n = -n WHERE id % 2 = 0`);
    await a!.sql(`DELETE FROM t WHERE id % 5 = 0`);
    await a!.sql(`INSERT INTO t SELECT g, 'new', g FROM generate_series(5001, 6000) g`);
    const r2 = await kick(rep);
    // even ids not divisible by 5 (2000) + 1000 new rows upserted; 1000 ids divisible by 5 deleted
    expect(r2).toMatchObject({ status: 'ok', tables: { [T]: { upserted: 3000, deleted: 1000, conflicts: 0 } } });
    sb = await tableChecksum(b!, T);
    expect(sb).toEqual(await tableChecksum(a!, T));
    expect(sb.count).toBe(5000);
    expect(await b!.sql(`SELECT n FROM t WHERE id IN (4, 5, 5500) ORDER BY id`)).toEqual([{ n: -4 }, { n: 5500 }]);
  });

  it('composite keys (text + int) work, including a change of one key part', async () => {
    const [a, b] = await createDatabases(2);
    const ddl = `CREATE TABLE public.c (k text, n int, v text, PRIMARY KEY (k, n))`;
    await sqlAll([a!, b!], ddl);
    const rep = await setup([a!, b!], ['c']);
    const applied: any[] = [];
    rep.on('rows:applied', (e: any) => { applied.push(e); });

    await a!.sql(`INSERT INTO c VALUES ('x', 1, 'x1'), ('x', 2, 'x2'), ('y', 1, 'y1'), ('y z', 1, 'spaced'), ('', 0, 'empty text key')`);
    const r1 = await kick(rep);
    expect(r1).toMatchObject({ status: 'ok', tables: { 'public.c': { upserted: 5, deleted: 0, conflicts: 0 } } });
    expect(await tableContents(b!, 'public.c')).toEqual(await tableContents(a!, 'public.c'));
    expect(await tableContents(b!, 'public.c')).toHaveLength(5);

    applied.length = 0;
    await a!.sql(`UPDATE c SET v = 'x1 changed' WHERE k = 'x' AND n = 1`);
    await a!.sql(`DELETE FROM c WHERE k = 'x' AND n = 2`);
    await a!.sql(`UPDATE c SET n = 9 WHERE k = 'y' AND n = 1`); // key part change
    const r2 = await kick(rep);
    expect(r2).toMatchObject({ status: 'ok', tables: { 'public.c': { upserted: 2, deleted: 2, conflicts: 0 } } });
    expect(await b!.sql(`SELECT k, n, v FROM c ORDER BY k, n`)).toEqual([
      { k: '', n: 0, v: 'empty text key' },
      { k: 'x', n: 1, v: 'x1 changed' },
      { k: 'y', n: 9, v: 'y1' },
      { k: 'y z', n: 1, v: 'spaced' },
    ]);
    expect(await tableContents(b!, 'public.c')).toEqual(await tableContents(a!, 'public.c'));

    // Keys in events are objects of the key columns.
    expect(applied).toHaveLength(1);
    expect(applied[0]).toMatchObject({ sync: 's', target: 'b', table: 'public.c' });
    expect(sortKeys(applied[0].upserted)).toEqual(sortKeys([{ k: 'x', n: 1 }, { k: 'y', n: 9 }]));
    expect(sortKeys(applied[0].deleted)).toEqual(sortKeys([{ k: 'x', n: 2 }, { k: 'y', n: 1 }]));
  });

  it('one source feeds two targets', async () => {
    const dbs = await createDatabases(3);
    const [a, b, c] = dbs;
    await sqlAll(dbs, SCHEMA_T);
    const rep = await setup(dbs, ['t']);
    const applied: any[] = [];
    rep.on('rows:applied', (e: any) => { applied.push(e); });

    await a!.sql(`INSERT INTO t SELECT g, 'v' || g, g FROM generate_series(1, 50) g`);
    const r1 = await kick(rep);
    expect(r1.status).toBe('ok');
    // Counts are per run; whether they add up over targets is not fixed by the contract.
    expect([50, 100]).toContain(r1.tables[T]!.upserted);
    expect(r1.tables[T]!.deleted).toBe(0);
    for (const d of [b!, c!]) {
      const rows = await expectSame(a!, d);
      expect(rows).toHaveLength(50);
    }
    expect(applied.map((e) => e.target).sort()).toEqual(['b', 'c']);
    for (const e of applied) {
      expect(e).toMatchObject({ sync: 's', table: T });
      expect(e.upserted).toHaveLength(50);
      expect(e.deleted).toEqual([]);
    }

    applied.length = 0;
    await a!.sql(`UPDATE t SET v = 'upd' WHERE id <= 10`);
    await a!.sql(`DELETE FROM t WHERE id > 40`);
    await a!.sql(`UPDATE t SET id = 500 WHERE id = 20`);
    const r2 = await kick(rep);
    expect(r2.status).toBe('ok');
    expect([11, 22]).toContain(r2.tables[T]!.upserted);
    expect([11, 22]).toContain(r2.tables[T]!.deleted);
    for (const d of [b!, c!]) {
      const rows = await expectSame(a!, d);
      expect(rows).toHaveLength(40);
      expect(await d.sql(`SELECT count(*)::int AS n FROM t WHERE v = 'upd'`)).toEqual([{ n: 10 }]);
      expect(await d.sql(`SELECT id FROM t WHERE id IN (20, 500)`)).toEqual([{ id: 500 }]);
    }
    expect(applied.map((e) => e.target).sort()).toEqual(['b', 'c']);
    for (const e of applied) {
      expect(e.upserted).toHaveLength(11);
      expect(e.deleted).toHaveLength(11);
      expect(e.deleted).toContainEqual({ id: 20 });
      expect(e.upserted).toContainEqual({ id: 500 });
    }
    expect((await kick(rep)).status).toBe('empty');
  });

  it('emits sync:start, rows:applied after the target committed, and sync:complete with the run result', async () => {
    const { a, b, rep } = await pairWithT();
    const starts: any[] = [];
    const completes: any[] = [];
    const applied: any[] = [];
    const order: string[] = [];
    const visibleChecks: Promise<unknown>[] = [];
    rep.on('sync:start', (e: any) => { starts.push(e); order.push('start'); });
    rep.on('sync:complete', (e: any) => { completes.push(e); order.push('complete'); });
    rep.on('rows:applied', (e: any) => {
      applied.push(e);
      order.push('applied');
      // After commit on the target, a new connection sees the rows.
      visibleChecks.push(b!.sql(`SELECT id, v FROM t ORDER BY id`));
    });

    await a!.sql(`INSERT INTO t VALUES (1, 'one', 1), (2, 'two', 2), (3, 'three', 3)`);
    const r1 = await kick(rep);
    expect(starts).toHaveLength(1);
    expect(starts[0]).toMatchObject({ sync: 's', reason: 'kick' });
    expect(starts[0].runId).toBeDefined();
    expect(starts[0].runId).not.toBeNull();
    expect(applied).toHaveLength(1);
    expect(applied[0]).toMatchObject({ sync: 's', target: 'b', table: T, deleted: [] });
    expect(sortKeys(applied[0].upserted)).toEqual([{ id: 1 }, { id: 2 }, { id: 3 }]);
    expect(completes).toHaveLength(1);
    expect(completes[0]).toMatchObject({ sync: r1.sync, status: r1.status, tables: r1.tables });
    expect(completes[0]).toMatchObject({ sync: 's', status: 'ok', tables: { [T]: { upserted: 3, deleted: 0, conflicts: 0 } } });
    // The run starts before anything is applied; rows:applied and sync:complete both follow commit.
    expect(order[0]).toBe('start');
    expect([...order].sort()).toEqual(['applied', 'complete', 'start']);
    const seen = await Promise.all(visibleChecks);
    expect(seen[0]).toEqual([{ id: 1, v: 'one' }, { id: 2, v: 'two' }, { id: 3, v: 'three' }]);

    await a!.sql(`DELETE FROM t WHERE id = 2`);
    await a!.sql(`UPDATE t SET v = 'THREE' WHERE id = 3`);
    await a!.sql(`UPDATE t SET id = 10 WHERE id = 1`);
    const r2 = await kick(rep);
    expect(starts).toHaveLength(2);
    expect(starts[1]).toMatchObject({ sync: 's', reason: 'kick' });
    expect(starts[1].runId).not.toEqual(starts[0].runId);
    expect(applied).toHaveLength(2);
    expect(applied[1]).toMatchObject({ sync: 's', target: 'b', table: T });
    expect(sortKeys(applied[1].upserted)).toEqual(sortKeys([{ id: 3 }, { id: 10 }]));
    expect(sortKeys(applied[1].deleted)).toEqual(sortKeys([{ id: 1 }, { id: 2 }]));
    expect(completes[1]).toMatchObject({ sync: 's', status: 'ok', tables: r2.tables });
    const seen2 = await Promise.all(visibleChecks);
    expect(seen2[1]).toEqual([{ id: 3, v: 'THREE' }, { id: 10, v: 'one' }]);
    await expectSame(a!, b!);

    // A run with nothing to do starts and completes but applies no rows.
    const r3 = await kick(rep);
    expect(r3.status).toBe('empty');
    expect(applied).toHaveLength(2);
    expect(completes.at(-1)).toMatchObject({ sync: 's', status: 'empty' });
  });

  it('applying the same batch twice changes nothing', async () => {
    const { a, b, rep } = await pairWithT();
    await a!.sql(`INSERT INTO t SELECT g, 'v' || g, g FROM generate_series(1, 20) g`);
    await kick(rep);
    expect(await tableContents(b!, T)).toHaveLength(20);

    // One batch of writes, kicked twice: the second kick finds nothing and changes nothing.
    const batch = `
      BEGIN;
      UPDATE t SET v = 'b-' || id WHERE id <= 5;
      DELETE FROM t WHERE id BETWEEN 16 AND 18;
      INSERT INTO t VALUES (21, 'new', 21), (22, 'new', 22);
      UPDATE t SET id = 30 WHERE id = 10;
      COMMIT;`;
    await a!.sql(batch);
    const r1 = await kick(rep);
    expect(r1).toMatchObject({ status: 'ok', tables: { [T]: { upserted: 8, deleted: 4, conflicts: 0 } } });
    const once = await expectSame(a!, b!);
    expect(once).toHaveLength(19);
    const r2 = await kick(rep);
    expect(r2.status).toBe('empty');
    expect(await tableContents(b!, T)).toEqual(once);

    // Re-applying rows that the target already holds: touch every row without changing it, and
    // insert-then-delete a key that the target already lost. The run applies them again.
    await a!.sql(`UPDATE t SET v = v`);
    await a!.sql(`BEGIN; INSERT INTO t VALUES (17, 'tmp', 0); DELETE FROM t WHERE id = 17; COMMIT;`);
    const r3 = await kick(rep);
    expect(r3.status).toBe('ok');
    expect(r3.tables[T]!.upserted).toBe(19);
    expect(await tableContents(b!, T)).toEqual(once);
    expect(await tableContents(a!, T)).toEqual(once);

    // A crash after the target committed and before the watermark moved means the next run
    // applies a batch that the target already has. Simulate it: write a batch on the source and
    // the same writes on the target by hand, then kick.
    const batch2 = `
      BEGIN;
      UPDATE t SET v = 'c-' || id, n = n * 2 WHERE id BETWEEN 1 AND 8;
      DELETE FROM t WHERE id IN (11, 12);
      INSERT INTO t VALUES (40, 'forty', 40), (41, 'forty-one', 41);
      UPDATE t SET id = 50 WHERE id = 13;
      COMMIT;`;
    await a!.sql(batch2);
    await b!.sql(batch2);
    const pre = await tableContents(a!, T);
    expect(await tableContents(b!, T)).toEqual(pre);
    expect(pre).toHaveLength(19);
    const r4 = await kick(rep);
    expect(r4.status).toBe('ok');
    expect(r4.tables[T]!.conflicts).toBe(0);
    expect(await tableContents(b!, T)).toEqual(pre);
    expect(await b!.sql(`SELECT id, v, n FROM t WHERE id IN (1, 11, 13, 40, 50) ORDER BY id`)).toEqual([
      { id: 1, v: 'c-1', n: 2 },
      { id: 40, v: 'forty', n: 40 },
      { id: 50, v: 'v13', n: 13 },
    ]);
    const r5 = await kick(rep);
    expect(r5.status).toBe('empty');
    expect(await tableContents(b!, T)).toEqual(pre);

    // A target edited by hand and made equal again: nothing is pending on the source.
    await b!.sql(`UPDATE t SET v = 'tampered' WHERE id = 1`);
    await b!.sql(`UPDATE t SET v = 'c-1' WHERE id = 1`);
    const r6 = await kick(rep);
    expect(r6.status).toBe('empty');
    expect(await tableContents(b!, T)).toEqual(pre);
  });
});
