/**
 * The Receiver interface (src/receivers/receiver.ts) as every kind implements it, PostgreSQL
 * included, driven directly against real servers: a transaction that rolls back leaves
 * nothing, one that commits leaves exactly its rows, the fence refuses an older run and
 * records the one-time state, TRUNCATE empties, a missing table is named.
 */
import { describe, expect, it } from 'vitest';
import { Database } from '../src/db/database.js';
import { mysqlFactory } from '../src/receivers/mysql.js';
import { postgresFactory } from '../src/receivers/postgres.js';
import type { ReceiverFactory, ReceiverTable } from '../src/receivers/receiver.js';
import { redisFactory } from '../src/receivers/redis.js';
import { sqliteFactory } from '../src/receivers/sqlite.js';
import { createDatabases, sqlAt, type TestDb } from './helpers/db.js';
import { caught } from './helpers/errors.js';
import { asText, T, T_PG, targetServers } from './helpers/targets.js';

const servers = { sqlite: targetServers('sqlite'), mysql: targetServers('mysql'), redis: targetServers('redis') };

const TABLE: ReceiverTable = {
  display: 'public.t',
  schema: 'public',
  name: 't',
  key: ['id'],
  columns: [
    { name: 'id', type: 'integer', typeOid: 23, elemOid: 0 },
    { name: 'v', type: 'text', typeOid: 25, elemOid: 0 },
    { name: 'n', type: 'bigint', typeOid: 20, elemOid: 0 },
  ],
};

type Kind = 'postgres' | 'sqlite' | 'mysql' | 'redis';

/** A factory over a new database of `kind` with table t, and everything in t as text. */
async function receiverOf(kind: Kind): Promise<{ factory: ReceiverFactory; rows(): Promise<string[]>; close(): Promise<void> }> {
  if (kind === 'postgres') {
    const [db] = (await createDatabases(1)) as [TestDb];
    await db.sql(`${T_PG}; CREATE SCHEMA pgferry; CREATE TABLE pgferry.fences (sync text PRIMARY KEY, generation numeric NOT NULL, origin text, updated_at timestamptz)`);
    const database = new Database('pg', db.url);
    return {
      factory: postgresFactory(database, 'pgferry'),
      rows: async () => asText(await sqlAt(db.url, 'SELECT id, v, n::text AS n FROM t ORDER BY id')),
      close: () => database.close(),
    };
  }
  const db = await servers[kind].db();
  await db.create(T);
  const factory =
    db.config.type === 'sqlite' ? await sqliteFactory('b', db.config.filename, 'pgferry')
    : db.config.type === 'mysql' ? await mysqlFactory('b', db.config.uri, 'pgferry')
    : await redisFactory('b', db.config.url, 'pgferry');
  return { factory, rows: async () => asText(await db.rows('t', ['id'])), close: () => factory.close() };
}

describe.each(['postgres', 'sqlite', 'mysql', 'redis'] as const)('the %s receiver', (kind) => {
  it('rolls back, commits, fences, truncates', async () => {
    const { factory, rows, close } = await receiverOf(kind);
    const r = await factory.open('s');
    try {
      await r.check([TABLE]);
      expect(await r.delivered('s')).toBe(false);
      expect(await r.isEmpty(TABLE)).toBe(true);
      const upserts = [
        { id: 1, v: "a\tb 'q' ñ", n: '9007199254740993' },
        { id: 2, v: null, n: null },
        { id: 3, v: 'three', n: '-3' },
      ];
      await r.begin();
      await r.apply(TABLE, { upserts, deletes: [] });
      await r.rollback();
      expect(await rows()).toEqual([]);

      await r.begin();
      expect(await r.apply(TABLE, { upserts, deletes: [] })).toEqual({ upserted: 3, deleted: 0 });
      await r.fence('s', { value: 5n, origin: 'o' });
      await r.commit();
      expect(await rows()).toEqual(["1|a\tb 'q' ñ|9007199254740993", '2|∅|∅', '3|three|-3']);
      expect(await r.delivered('s')).toBe(true);

      await r.begin();
      expect(await r.apply(TABLE, { upserts: [{ id: 2, v: 'two', n: '2' }], deletes: [{ id: 1 }, { id: 9 }] })).toEqual({ upserted: 1, deleted: 1 });
      const stale = await caught(r.fence('s', { value: 4n, origin: 'o' }));
      expect(stale.code).toBe('RUN_FAILED');
      expect(stale.transient).toBe(true);
      await r.rollback();
      expect(await rows()).toEqual(["1|a\tb 'q' ñ|9007199254740993", '2|∅|∅', '3|three|-3']);

      await r.begin();
      await r.truncate(TABLE);
      await r.fence('s', { value: 6n, origin: 'o' });
      await r.commit();
      expect(await rows()).toEqual([]);
      expect(await r.isEmpty(TABLE)).toBe(true);
      if (kind !== 'redis') {
        const missing = await caught(r.check([{ ...TABLE, display: 'public.nope', name: 'nope' }]));
        expect(missing.code).toBe('TABLE_NOT_FOUND');
        expect(missing.table).toBe('public.nope');
      }
    } finally {
      await r.close();
      await close();
    }
  });
});
