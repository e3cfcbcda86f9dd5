/**
 * Cascade (Bucardo's makedelta): rows that one sync applied to a database are passed on by
 * another sync reading that database only when that sync has `cascade: true`; with `false`
 * only rows written by applications travel. A change carries the database where it was first
 * written, so a ring of cascading syncs (A→B→C→A) never loops.
 */
import { describe, expect, it } from 'vitest';
import type pg from 'pg';
import { Replicator } from '../src/index.js';
import { connect, createDatabases, sqlAll, tableContents } from './helpers/db.js';
import { kick } from './helpers/replicators.js';

describe('cascade', () => {
  it('rows applied on B by A⇄B reach C only through the B→C sync with cascade: true', async () => {
    const [dbA, dbB, dbC] = await createDatabases(3);
    const dbs = [dbA!, dbB!, dbC!];
    await sqlAll(dbs, `CREATE TABLE t1 (id int PRIMARY KEY, v text); CREATE TABLE t2 (id int PRIMARY KEY, v text);`);
    const rep = new Replicator();
    try {
      await rep.addDatabase('a', dbA!.url);
      await rep.addDatabase('b', dbB!.url);
      await rep.addDatabase('c', dbC!.url);
      await rep.addSync('ab', { tables: ['t1', 't2'], databases: { a: 'source', b: 'source' }, autokick: false });
      // t1 cascades on to C; t2 (the control) does not.
      await rep.addSync('bc', { tables: ['t1'], databases: { b: 'source', c: 'target' }, autokick: false, cascade: true });
      await rep.addSync('bc_plain', { tables: ['t2'], databases: { b: 'source', c: 'target' }, autokick: false, cascade: false });
      await rep.install();
      const a = await connect(dbA!);
      const b = await connect(dbB!);
      const both = async (c: pg.Client, sql: string) => {
        await c.query(sql.replaceAll('$T', 't1'));
        await c.query(sql.replaceAll('$T', 't2'));
      };
      const kickAll = async () => {
        const ab = await kick(rep, 'ab');
        const bc = await kick(rep, 'bc');
        const plain = await kick(rep, 'bc_plain');
        return { ab, bc, plain };
      };

      // 1. Rows written on A arrive on B through `ab`; only `bc` passes them on to C.
      await both(a, `INSERT INTO $T VALUES (1, 'a1'), (2, 'a2'), (3, 'a3')`);
      let r = await kickAll();
      expect(r.ab.status).toBe('ok');
      expect(r.bc.status).toBe('ok');
      expect(r.plain.status).toBe('empty');
      expect(await tableContents(dbB!, 't1')).toEqual(['(1,a1)', '(2,a2)', '(3,a3)']);
      expect(await tableContents(dbB!, 't2')).toEqual(['(1,a1)', '(2,a2)', '(3,a3)']);
      expect(await tableContents(dbC!, 't1')).toEqual(['(1,a1)', '(2,a2)', '(3,a3)']);
      expect(await tableContents(dbC!, 't2')).toEqual([]);

      // 2. Rows written on B by an application reach A and C through both B→C syncs.
      await both(b, `INSERT INTO $T VALUES (10, 'b10')`);
      r = await kickAll();
      expect(r.plain.status).toBe('ok');
      expect(await tableContents(dbA!, 't1')).toEqual(['(1,a1)', '(10,b10)', '(2,a2)', '(3,a3)']);
      expect(await tableContents(dbC!, 't1')).toEqual(['(1,a1)', '(10,b10)', '(2,a2)', '(3,a3)']);
      expect(await tableContents(dbC!, 't2')).toEqual(['(10,b10)']);

      // 3. Updates and deletes written on A cascade the same way.
      await both(a, `UPDATE $T SET v = 'a1-upd' WHERE id = 1`);
      await both(a, `DELETE FROM $T WHERE id = 2`);
      // ... including a change to a row that B's application first wrote.
      await both(a, `UPDATE $T SET v = 'b10-upd-on-a' WHERE id = 10`);
      r = await kickAll();
      expect(r.bc.status).toBe('ok');
      expect(r.plain.status).toBe('empty');
      const expected = ['(1,a1-upd)', '(10,b10-upd-on-a)', '(3,a3)'];
      expect(await tableContents(dbA!, 't1')).toEqual(expected);
      expect(await tableContents(dbB!, 't1')).toEqual(expected);
      expect(await tableContents(dbC!, 't1')).toEqual(expected);
      expect(await tableContents(dbB!, 't2')).toEqual(expected);
      expect(await tableContents(dbC!, 't2')).toEqual(['(10,b10)']);

      // 4. B's application again: only that reaches C through the plain sync.
      await both(b, `UPDATE $T SET v = 'b3' WHERE id = 3`);
      r = await kickAll();
      expect(r.plain.status).toBe('ok');
      expect(await tableContents(dbC!, 't2')).toEqual(['(10,b10)', '(3,b3)']);
      expect(await tableContents(dbC!, 't1')).toEqual(['(1,a1-upd)', '(10,b10-upd-on-a)', '(3,b3)']);
      expect(await tableContents(dbA!, 't1')).toEqual(['(1,a1-upd)', '(10,b10-upd-on-a)', '(3,b3)']);

      // Nothing is left to move, and nothing comes back.
      for (let i = 0; i < 2; i++) {
        r = await kickAll();
        expect([r.ab.status, r.bc.status, r.plain.status]).toEqual(['empty', 'empty', 'empty']);
      }
      expect(await tableContents(dbA!, 't1')).toEqual(await tableContents(dbB!, 't1'));
      expect(await tableContents(dbA!, 't2')).toEqual(await tableContents(dbB!, 't2'));
    } finally {
      await rep.stop();
    }
  });

  it('a ring of cascading syncs A→B→C→A carries every row around once and never loops', async () => {
    const [dbA, dbB, dbC] = await createDatabases(3);
    const dbs = [dbA!, dbB!, dbC!];
    await sqlAll(dbs, `CREATE TABLE t (id int PRIMARY KEY, v text)`);
    const rep = new Replicator();
    const applied: { sync: string; target: string; upserted: unknown[]; deleted: unknown[] }[] = [];
    rep.on('rows:applied', (e) => applied.push(e));
    try {
      await rep.addDatabase('a', dbA!.url);
      await rep.addDatabase('b', dbB!.url);
      await rep.addDatabase('c', dbC!.url);
      await rep.addSync('ab', { tables: ['t'], databases: { a: 'source', b: 'target' }, autokick: false, cascade: true });
      await rep.addSync('bc', { tables: ['t'], databases: { b: 'source', c: 'target' }, autokick: false, cascade: true });
      await rep.addSync('ca', { tables: ['t'], databases: { c: 'source', a: 'target' }, autokick: false, cascade: true });
      await rep.install();
      const a = await connect(dbA!);
      const b = await connect(dbB!);
      const c = await connect(dbC!);
      const round = async () => [await kick(rep, 'ab'), await kick(rep, 'bc'), await kick(rep, 'ca')].map((x) => x.status);
      const expectEqual = async () => {
        const ca = await tableContents(dbA!, 't');
        expect(await tableContents(dbB!, 't')).toEqual(ca);
        expect(await tableContents(dbC!, 't')).toEqual(ca);
        return ca;
      };
      const expectQuiet = async () => {
        // Every sync, kicked again and again: nothing moves.
        for (let i = 0; i < 2; i++) expect(await round()).toEqual(['empty', 'empty', 'empty']);
        const all = await rep.kick();
        expect(all.map((x) => x.status)).toEqual(['empty', 'empty', 'empty']);
      };

      await a.query(`INSERT INTO t VALUES (1, 'a1')`);
      await b.query(`INSERT INTO t VALUES (2, 'b2')`);
      await c.query(`INSERT INTO t VALUES (3, 'c3')`);
      for (let i = 0; i < 3; i++) await round();
      expect(await expectEqual()).toEqual(['(1,a1)', '(2,b2)', '(3,c3)']);
      await expectQuiet();
      // Each row was applied to each of the two other databases exactly once.
      const times = (target: string, id: number) =>
        applied.filter((e) => e.target === target && e.upserted.some((k) => (k as { id: number }).id === id)).length;
      for (const [id, home] of [[1, 'a'], [2, 'b'], [3, 'c']] as const) {
        for (const target of ['a', 'b', 'c']) expect(times(target, id), `row ${id} applied on ${target}`).toBe(target === home ? 0 : 1);
      }

      // Updates and deletes, also of rows first written elsewhere, go around too.
      await a.query(`UPDATE t SET v = 'c3-upd-on-a' WHERE id = 3`);
      await b.query(`DELETE FROM t WHERE id = 1`);
      await c.query(`INSERT INTO t VALUES (4, 'c4')`);
      for (let i = 0; i < 3; i++) await round();
      expect(await expectEqual()).toEqual(['(2,b2)', '(3,c3-upd-on-a)', '(4,c4)']);
      await expectQuiet();
    } finally {
      await rep.stop();
    }
  });
});
