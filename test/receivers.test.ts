/**
 * The Receiver interface (src/receivers/receiver.ts) as every kind implements it, PostgreSQL
 * included, driven directly against real servers: a transaction that rolls back leaves
 * nothing, one that commits leaves exactly its rows, the fence refuses an older run and
 * records the one-time state, TRUNCATE empties, a missing table is named.
 */
import BetterSqlite3 from 'better-sqlite3';
import mysql from 'mysql2/promise';
import { describe, expect, it } from 'vitest';
import { Database } from '../src/db/database.js';
import { mysqlFactory } from '../src/receivers/mysql.js';
import { postgresFactory } from '../src/receivers/postgres.js';
import type { Receiver, ReceiverFactory, ReceiverTable } from '../src/receivers/receiver.js';
import { redisFactory } from '../src/receivers/redis.js';
import { sqliteFactory } from '../src/receivers/sqlite.js';
import { createDatabases, sqlAt, type TestDb } from './helpers/db.js';
import { caught, expectNoSecret } from './helpers/errors.js';
import { asText, T, T_PG, targetServers, type TargetDb } from './helpers/targets.js';

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

/** A text column of a receiving table. */
const text = (name: string) => ({ name, type: 'text', typeOid: 25, elemOid: 0 });

/** The database a MySQL TargetDb's URI names. */
const dbName = (uri: string) => new URL(uri).pathname.slice(1);

/** A new database of `kind` (`before` run there first) with a receiver open on it for `fn`, closed after. */
async function withReceiver(kind: 'mysql' | 'redis', before: string | string[] | null, fn: (db: TargetDb, r: Receiver) => Promise<void>): Promise<void> {
  const db = await servers[kind].db();
  if (before) await db.exec(before);
  const factory = db.config.type === 'mysql' ? await mysqlFactory('b', db.config.uri, 'pgferry') : await redisFactory('b', (db.config as { url: string }).url, 'pgferry');
  const r = await factory.open('s');
  try {
    await fn(db, r);
  } finally {
    await r.close();
    await factory.close();
  }
}

describe('the mysql receiver refuses what would merge or cut rows', () => {
  it('a text key whose collation is not binary NO PAD is refused; with one, keys that differ by case or trailing spaces stay apart', async () => {
    await withReceiver('mysql', null, async (db, r) => {
      const K = (name: string): ReceiverTable => ({ display: `public.${name}`, schema: 'public', name, key: ['k'], columns: [text('k'), text('v')] });
      for (const [table, collation] of [['k_bin', 'utf8mb4_bin'], ['k_ci', 'utf8mb4_general_ci']] as const) {
        await db.exec(`CREATE TABLE ${table} (k VARCHAR(20) COLLATE ${collation} PRIMARY KEY, v TEXT)`);
        const err = await caught(r.check([K(table)]));
        expect(err.code).toBe('SCHEMA_MISMATCH');
        expect(err).toMatchObject({ database: 'b', table: `public.${table}`, column: 'k' });
        expect(err.message).toBe(
          `The mysql table "${table}" on database "b" has key column "k" (varchar) with collation ${collation}, which can make keys that differ in PostgreSQL one ('a' and 'a ', or 'abc' and 'ABC'). Give it the collation utf8mb4_nopad_bin (binary, NO PAD), or make it VARBINARY, and run again; pending changes are kept.`,
        );
      }
      await db.exec('CREATE TABLE k_nopad (k VARCHAR(20) COLLATE utf8mb4_nopad_bin PRIMARY KEY, v TEXT)');
      await db.exec('CREATE TABLE k_bytes (k VARBINARY(20) PRIMARY KEY, v TEXT)');
      const upserts = [
        { k: 'a', v: '1' },
        { k: 'a ', v: '2' },
        { k: 'abc', v: '3' },
        { k: 'ABC', v: '4' },
      ];
      await r.check([K('k_nopad'), K('k_bytes')]);
      await r.begin();
      await r.apply(K('k_nopad'), { upserts, deletes: [] });
      await r.apply(K('k_bytes'), { upserts, deletes: [] });
      await r.commit();
      for (const table of ['k_nopad', 'k_bytes']) {
        const rows = (await db.exec(`SELECT CAST(k AS CHAR) AS k, v FROM ${table} ORDER BY v`)) as { k: string; v: string }[];
        expect(rows.map((x) => `${x.k}|${x.v}`), table).toEqual(['a|1', 'a |2', 'abc|3', 'ABC|4']);
      }
    });
  });

  it('a unique index besides the key is refused (ON DUPLICATE KEY UPDATE would match it); one holding the key columns is not', async () => {
    await withReceiver('mysql', 'CREATE TABLE t (id INT PRIMARY KEY, v TEXT, n BIGINT, KEY n_plain (n), UNIQUE KEY id_n (id, n))', async (db, r) => {
      await r.check([TABLE]);
      await db.exec('ALTER TABLE t ADD UNIQUE KEY n_unique (n)');
      const err = await caught(r.check([TABLE]));
      expect(err.code).toBe('SCHEMA_MISMATCH');
      expect(err).toMatchObject({ database: 'b', table: 'public.t', column: 'n' });
      expect(err.message).toBe(
        'The mysql table "t" on database "b" has the unique index "n_unique" (n) besides its key (id): INSERT ... ON DUPLICATE KEY UPDATE would update a row that index matches instead of inserting the row of the key. Drop that index or make it non-unique, and run again; pending changes are kept.',
      );
    });
  });

  it('a value too long for its column is refused, not cut (strict mode, even on a non-transactional table)', async () => {
    // MyISAM: the server's default STRICT_TRANS_TABLES would cut a later row of a statement there.
    await withReceiver('mysql', 'CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(3), n BIGINT) ENGINE = MyISAM', async (db, r) => {
      await r.begin();
      const err = await caught(r.apply(TABLE, { upserts: [{ id: 1, v: 'one', n: '1' }, { id: 2, v: 'toolong', n: '2' }], deletes: [] }));
      await r.rollback();
      expect(err.code).toBe('RUN_FAILED');
      expect(err.transient).toBe(false);
      expect(err.message).toBe(`Writing table public.t (t) on mysql database "b" failed: Data too long for column 'v' at row 2. Nothing of the run was applied.`);
      expect(asText(await db.rows('t', ['id'])).filter((x) => x.startsWith('2|'))).toEqual([]);
    });
  });

  it('a lock wait timeout is transient; a wrong password is not', async () => {
    const db = await servers.mysql.db();
    const uri = (db.config as { uri: string }).uri;
    await db.create(T);
    await db.exec(`INSERT INTO t VALUES (1, 'one', 1)`);
    const wrong = new URL(uri);
    wrong.password = 'not-the-Password';
    const denied = await mysqlFactory('b', wrong.toString(), 'pgferry');
    const refused = await caught(denied.open('s'));
    await denied.close();
    expect(refused.code).toBe('CONNECTION_FAILED');
    expect(refused.transient).toBe(false);
    expect(refused.message).toBe(
      `Cannot reach mysql database "b": Access denied for user '${decodeURIComponent(wrong.username)}'@'127.0.0.1' (using password: YES). Check the user, password and database in its configuration; retrying does not help.`,
    );
    expectNoSecret(refused, 'not-the-Password');
    // New connections wait 1 s for a lock instead of 50 s.
    await db.exec('SET GLOBAL innodb_lock_wait_timeout = 1');
    const factory = await mysqlFactory('b', uri, 'pgferry');
    const holder = await mysql.createConnection({ uri });
    try {
      const r = await factory.open('s');
      try {
        await holder.query('START TRANSACTION');
        await holder.query(`UPDATE t SET v = 'held' WHERE id = 1`);
        await r.begin();
        const err = await caught(r.apply(TABLE, { upserts: [{ id: 1, v: 'mine', n: '1' }], deletes: [] }));
        await r.rollback();
        expect(err.code).toBe('RUN_FAILED');
        expect(err.transient).toBe(true);
        expect(err.message).toBe('Writing table public.t (t) on mysql database "b" failed: Lock wait timeout exceeded; try restarting transaction. Nothing of the run was applied.');
      } finally {
        await r.close();
      }
    } finally {
      await holder.end();
      await db.exec('SET GLOBAL innodb_lock_wait_timeout = 50');
      await factory.close();
    }
  });

  it('a user without CREATE: open() fails without keeping its connection while the fence table is missing, and works once it exists', async () => {
    const db = await servers.mysql.db();
    const uri = (db.config as { uri: string }).uri;
    const name = dbName(uri);
    await db.create(T);
    const user = `lim_${name.slice(2)}`;
    await db.exec(`CREATE USER '${user}'@'%' IDENTIFIED BY 'lim-pw'`);
    await db.exec(`GRANT SELECT, INSERT, UPDATE, DELETE ON \`${name}\`.* TO '${user}'@'%'`);
    const limited = new URL(uri);
    limited.username = user;
    limited.password = 'lim-pw';
    const factory = await mysqlFactory('b', limited.toString(), 'pgferry');
    try {
      // More failed opens than the pool has connections: each gave its connection back.
      for (let i = 0; i < 6; i++) {
        const err = await caught(factory.open('s'));
        expect(err.code).toBe('RUN_FAILED');
        expect(err.message).toBe(`Writing on mysql database "b" failed: CREATE command denied to user '${user}'@'127.0.0.1' for table \`${name}\`.\`pgferry_fences\`. Nothing of the run was applied.`);
      }
      const admin = await mysqlFactory('b', uri, 'pgferry');
      await (await admin.open('s')).close();
      await admin.close();
      const r = await factory.open('s');
      try {
        await r.check([TABLE]);
        await r.begin();
        await r.apply(TABLE, { upserts: [{ id: 1, v: 'one', n: '1' }], deletes: [] });
        await r.fence('s', { value: 1n, origin: 'o' });
        await r.commit();
        expect(await r.delivered('s')).toBe(true);
      } finally {
        await r.close();
      }
      expect(asText(await db.rows('t', ['id']))).toEqual(['1|one|1']);
    } finally {
      await factory.close();
    }
  });
});

describe('the redis receiver', () => {
  it('escapes key texts: composite keys that join alike and a key `keys` stay rows of their own', async () => {
    const C: ReceiverTable = { display: 'public.c', schema: 'public', name: 'c', key: ['a', 'b'], columns: [text('a'), text('b'), text('v')] };
    const K: ReceiverTable = { display: 'public.k', schema: 'public', name: 'k', key: ['id'], columns: [text('id'), text('v')] };
    await withReceiver('redis', null, async (db, r) => {
      await r.begin();
      await r.apply(C, {
        upserts: [
          { a: 'x:y', b: 'z', v: '1' },
          { a: 'x', b: 'y:z', v: '2' },
          { a: 'back\\slash', b: '', v: '3' },
        ],
        deletes: [],
      });
      await r.apply(K, {
        upserts: [
          { id: 'keys', v: 'the word' },
          { id: '\\keys', v: 'with a backslash' },
          { id: 'plain', v: 'p' },
        ],
        deletes: [],
      });
      await r.commit();
      expect(((await db.exec(['KEYS', 'public.*'])) as string[]).sort()).toEqual(
        ['public.c:back\\\\slash:', 'public.c:keys', 'public.c:x:y\\:z', 'public.c:x\\:y:z', 'public.k:\\\\keys', 'public.k:\\keys', 'public.k:keys', 'public.k:plain'].sort(),
      );
      expect(((await db.exec(['SMEMBERS', 'public.k:keys'])) as string[]).sort()).toEqual(['\\\\keys', '\\keys', 'plain']);
      expect(await db.rows('c', ['a', 'b'])).toEqual([
        { a: 'back\\slash', b: '', v: '3' },
        { a: 'x', b: 'y:z', v: '2' },
        { a: 'x:y', b: 'z', v: '1' },
      ]);
      expect(await db.rows('k', ['id'])).toEqual([
        { id: '\\keys', v: 'with a backslash' },
        { id: 'keys', v: 'the word' },
        { id: 'plain', v: 'p' },
      ]);
      await r.begin();
      expect(await r.apply(C, { upserts: [], deletes: [{ a: 'x:y', b: 'z' }] })).toEqual({ upserted: 0, deleted: 1 });
      await r.truncate(K);
      await r.commit();
      expect(((await db.exec(['KEYS', 'public.*'])) as string[]).sort()).toEqual(['public.c:back\\\\slash:', 'public.c:keys', 'public.c:x:y\\:z'].sort());
    });
  });

  it('an error in the EXEC reply says the write may be partial, and the fence is put back', async () => {
    // The set of t's keys is a string: SADD fails when EXEC runs it, after the HSET took effect.
    await withReceiver('redis', ['SET', 'public.t:keys', 'not a set'], async (db, r) => {
      await r.begin();
      await r.apply(TABLE, { upserts: [{ id: 1, v: 'one', n: '1' }], deletes: [] });
      await r.fence('s', { value: 1n, origin: 'o' });
      const err = await caught(r.commit());
      expect(err.code).toBe('RUN_FAILED');
      expect(err.database).toBe('b');
      expect(err.message).toBe(
        'Writing on redis database "b" failed: WRONGTYPE Operation against a key holding the wrong kind of value. The write may be partial: redis applied the transaction\'s other commands. The watermark stays, so the next run writes the chunk again.',
      );
      expect(await db.exec(['HGETALL', 'public.t:1'])).toEqual(['v', 'one', 'n', '1']);
      // The fence SET took effect too and was put back: the sync has not delivered here.
      expect(await r.delivered('s')).toBe(false);
    });
  });
});

describe('the sqlite receiver', () => {
  it('a database another writer holds fails begin() at once with a transient error', async () => {
    const db = await servers.sqlite.db();
    const filename = (db.config as { filename: string }).filename;
    await db.create(T);
    const factory = await sqliteFactory('b', filename, 'pgferry');
    const other = new BetterSqlite3(filename);
    const r = await factory.open('s');
    try {
      other.exec('BEGIN IMMEDIATE');
      const started = performance.now();
      const err = await caught(r.begin());
      expect(performance.now() - started).toBeLessThan(5000);
      expect(err.code).toBe('RUN_FAILED');
      expect(err.transient).toBe(true);
      expect(err.message).toBe('Writing on sqlite database "b" failed: database is locked. Nothing of the run was applied.');
      other.exec('ROLLBACK');
      await r.begin();
      await r.apply(TABLE, { upserts: [{ id: 1, v: 'one', n: '1' }], deletes: [] });
      await r.commit();
      expect(asText(await db.rows('t', ['id']))).toEqual(['1|one|1']);
    } finally {
      await r.close();
      other.close();
      await factory.close();
    }
  });
});
