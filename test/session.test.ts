/**
 * pgferry's sessions: a transaction whose first statement, sent with its BEGIN, fails is rolled
 * back when the session closes, so the pooled connection is clean for the next user; the temporary
 * tables a session reuses are empty at the start of every transaction; a lock taken in the round
 * trip of a BEGIN is the same lock, and the snapshot comes after it.
 */
import { describe, expect, it } from 'vitest';
import { Database } from '../src/db/database.js';
import { Session } from '../src/db/session.js';
import { createDatabases } from './helpers/db.js';
import { waitFor } from './helpers/wait.js';

describe('sessions', () => {
  it('a statement that fails after BEGIN leaves no aborted transaction in the pool', async () => {
    const [a] = await createDatabases(1);
    const db = new Database('a', { connectionString: a!.url, max: 1 });
    try {
      const s = await Session.open(db);
      await expect(s.begin('repeatable read', {}, 'SELECT 1 / 0')).rejects.toMatchObject({ code: '22012' });
      await s.close();
      // The pool has one connection: the same one, outside any transaction.
      const next = await Session.open(db);
      expect((await next.query<{ s: string }>(`SELECT pg_catalog.current_setting('transaction_isolation') AS s`)).rows).toEqual([{ s: 'read committed' }]);
      expect((await next.query<{ n: number }>('SELECT 1 AS n')).rows).toEqual([{ n: 1 }]);
      await next.close();
    } finally {
      await db.close();
    }
  });

  it('a reused temporary table starts every transaction empty, and is emptied when reused within one', async () => {
    const [a] = await createDatabases(1);
    const db = new Database('a', { connectionString: a!.url, max: 1 });
    const create = `CREATE TEMP TABLE pgferry_probe ON COMMIT DELETE ROWS AS SELECT 1 AS n WITH NO DATA`;
    const count = async (s: Session) => (await s.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_temp.pgferry_probe')).rows[0]!.n;
    try {
      const s = await Session.open(db);
      await s.begin();
      await s.tempTable('pgferry_probe', create);
      await s.query('INSERT INTO pg_temp.pgferry_probe VALUES (1), (2)');
      await s.tempTable('pgferry_probe', create);
      expect(await count(s)).toBe(0);
      await s.query('INSERT INTO pg_temp.pgferry_probe VALUES (3)');
      await s.commit();
      await s.begin();
      await s.tempTable('pgferry_probe', create);
      expect(await count(s)).toBe(0);
      await s.query('INSERT INTO pg_temp.pgferry_probe VALUES (4)');
      await s.rollback();
      await s.begin();
      await s.tempTable('pgferry_probe', create);
      expect(await count(s)).toBe(0);
      await s.close();
    } finally {
      await db.close();
    }
  });
  it("lockAndBegin takes lock()'s lock, whatever standard_conforming_strings is, and its snapshot after the wait", async () => {
    const [a] = await createDatabases(1);
    await a!.sql(`CREATE TABLE t (v int)`);
    const db = new Database('a', { connectionString: a!.url, max: 2, options: '-c standard_conforming_strings=off' });
    const key = { kind: 'pgferry.test', subject: `sch\\ema'.sync "\u00e9"` };
    try {
      const holder = await Session.open(db);
      expect((await holder.query('SHOW standard_conforming_strings')).rows).toEqual([{ standard_conforming_strings: 'off' }]);
      await holder.lock(key);
      const waiter = await Session.open(db);
      const pid = (await waiter.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      const begun = waiter.lockAndBegin<{ n: number; iso: string }>(key, 'repeatable read', { 'pgferry.x': `it's \\ here` }, `SELECT (SELECT count(*)::int FROM t) AS n, current_setting('transaction_isolation') AS iso, current_setting('pgferry.x') AS x`);
      // It waits for the same lock (the same two keys), so nothing was read yet.
      await waitFor('the waiter blocked on the advisory lock', async () => (await a!.sql(`SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'advisory'`, [pid])).length === 1);
      await a!.sql(`INSERT INTO t VALUES (1)`);
      await holder.close();
      expect(await begun).toEqual([{ n: 1, iso: 'repeatable read', x: `it's \\ here` }]);
      // The lock is held in the transaction, and a commit that unlocks releases it.
      const held = async () => (await a!.sql<{ n: number }>(`SELECT count(*)::int AS n FROM pg_locks WHERE pid = $1 AND locktype = 'advisory'`, [pid]))[0]!.n;
      expect(await held()).toBe(1);
      await waiter.commit(`INSERT INTO t VALUES (2)`, { unlock: true });
      expect(await held()).toBe(0);
      expect(await a!.sql(`SELECT count(*)::int AS n FROM t`)).toEqual([{ n: 2 }]);
      await waiter.close();
      // The connection went back to the pool whole: the next session gets it and can lock again.
      const again = await Session.open(db);
      expect((await again.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid).toBe(pid);
      await again.lock(key);
      expect(await held()).toBe(1);
      await again.close();
      expect(await held()).toBe(0);
    } finally {
      await db.close();
    }
  });
  it('analyzeTemp samples with a statistics target of 10, and skips fills of up to 1000 rows of a table it analyzed before', async () => {
    const [a] = await createDatabases(1);
    const db = new Database('a', { connectionString: a!.url, max: 1 });
    const name = 'pgferry_probe_stats';
    const create = `CREATE TEMP TABLE ${name} ON COMMIT DELETE ROWS AS SELECT 1 AS n WITH NO DATA`;
    try {
      const s = await Session.open(db);
      const fill = async (rows: number) => {
        await s.begin();
        await s.tempTable(name, create);
        await s.query(`INSERT INTO pg_temp.${name} SELECT g FROM generate_series(1, $1::int) g`, [rows]);
        await s.analyzeTemp(name, rows);
        const r = await s.query<{ tuples: number; bounds: number | null }>(
          `SELECT c.reltuples::int AS tuples,
                  (SELECT pg_catalog.array_length(st.histogram_bounds::text::text[], 1) FROM pg_stats st WHERE st.tablename = c.relname) AS bounds
             FROM pg_class c WHERE c.oid = 'pg_temp.${name}'::regclass`,
        );
        await s.commit();
        return r.rows[0]!;
      };
      // A statistics target of 10: 11 histogram bounds (100 would give 101).
      expect(await fill(5000)).toEqual({ tuples: 5000, bounds: 11 });
      // Analyzed before: a small fill keeps the statistics (the planner scales them by size).
      expect((await fill(10)).tuples).toBe(5000);
      // A larger one is analyzed again.
      expect((await fill(2000)).tuples).toBe(2000);
      await s.close();
    } finally {
      await db.close();
    }
  });
});
