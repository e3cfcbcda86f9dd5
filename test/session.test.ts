/**
 * pgferry's sessions: a transaction whose first statement, sent with its BEGIN, fails is rolled
 * back when the session closes, so the pooled connection is clean for the next user; the temporary
 * tables a session reuses are empty at the start of every transaction.
 */
import { describe, expect, it } from 'vitest';
import { Database } from '../src/db/database.js';
import { Session } from '../src/db/session.js';
import { createDatabases } from './helpers/db.js';

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
});
