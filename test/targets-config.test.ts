/**
 * Receivers that are not PostgreSQL, as configuration (issue 15): they can only receive, their
 * config is checked field by field, a missing driver names the package to install, passwords
 * in their URIs never reach a message, and validate() refuses them clearly.
 */
import net from 'node:net';
import path from 'node:path';
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { defineConfig } from '../src/index.js';
import { loadDriver } from '../src/receivers/common.js';
import { createDatabases, type TestDb } from './helpers/db.js';
import { caught, expectConfigInvalid, expectNoSecret } from './helpers/errors.js';
import { stopReplicatorsAfterEach } from './helpers/replicators.js';

const replicators = stopReplicatorsAfterEach();

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const SQLITE = { type: 'sqlite' as const, filename: path.join(os.tmpdir(), 'pgferry-never-written.db') };

describe('receivers of other kinds in the configuration', () => {
  it('a SQLite, MySQL or Redis database can be a target or fullcopy, never a source', async () => {
    const rep = replicators.create();
    await rep.addDatabase('a', 'postgres://u@127.0.0.1:1/x');
    await rep.addDatabase('lite', SQLITE);
    await rep.addDatabase('cache', { type: 'redis', url: 'redis://127.0.0.1:1' });
    const err = await caught(rep.addSync('s', { tables: ['t'], databases: { a: 'target', lite: 'source', cache: 'source' } }));
    expectConfigInvalid(err, 'databases.lite', 'databases.cache');
    expect(err.message).toContain("database \"lite\" is sqlite, which can only be a 'target' or 'fullcopy'");
    await rep.addSync('ok', { tables: ['t'], databases: { a: 'source', lite: 'target', cache: 'fullcopy' } });
    expect(rep.status().databases).toEqual(['a', 'lite', 'cache']);
  });

  it('a sync with a SQLite or MySQL receiver cannot list two tables of one name in different schemas', async () => {
    const rep = replicators.create();
    await rep.addDatabase('a', 'postgres://u@127.0.0.1:1/x');
    await rep.addDatabase('pg', 'postgres://u@127.0.0.1:1/y');
    await rep.addDatabase('lite', SQLITE);
    await rep.addDatabase('my', { type: 'mysql', uri: 'mysql://u@127.0.0.1:1/shop' });
    await rep.addDatabase('cache', { type: 'redis', url: 'redis://127.0.0.1:1' });
    for (const [db, kind] of [['lite', 'sqlite'], ['my', 'mysql']] as const) {
      const err = await caught(rep.addSync(`s_${db}`, { tables: ['public.t', 'audit.T'], databases: { a: 'source', pg: 'target', [db]: 'target' } }));
      expectConfigInvalid(err, 'tables');
      expect(err.sync).toBe(`s_${db}`);
      expect(err.message).toBe(
        `Invalid sync "s_${db}": tables: public.t and audit.t would both be table "t" on ${kind} database "${db}" (SQLite and MySQL receivers drop the schema). Replicate them to different databases, in syncs of their own.`,
      );
    }
    // PostgreSQL and Redis receivers keep the schema.
    await rep.addSync('ok', { tables: ['public.t', 'audit.t'], databases: { a: 'source', pg: 'target', cache: 'target' } });
    expect(rep.status().syncs.map((s) => s.name)).toEqual(['ok']);
  });

  it('bad fields are named by path; a name is used once whatever the kind', async () => {
    const rep = replicators.create();
    expectConfigInvalid(await caught(rep.addDatabase('x', { type: 'sqlite' } as never)), 'x.filename');
    expectConfigInvalid(await caught(rep.addDatabase('x', { type: 'mysql', uri: 'postgres://u@h/db' })), 'x.uri');
    expectConfigInvalid(await caught(rep.addDatabase('x', { type: 'redis', url: 'redis://h', extra: 1 } as never)), 'x.extra');
    expectConfigInvalid(await caught(rep.addDatabase('x', { type: 'oracle', uri: 'oracle://h' } as never)), 'x.type');
    await rep.addDatabase('x', SQLITE);
    expectConfigInvalid(await caught(rep.addDatabase('x', 'postgres://u@127.0.0.1:1/x')), 'x');
  });

  it('the pgferry command config takes them, and names their bad fields', async () => {
    const ok = { databases: { a: 'postgres://u@h/db', lite: SQLITE }, syncs: { s: { tables: ['t'], databases: { a: 'source' as const, lite: 'target' as const } } } };
    expect(defineConfig(ok)).toBe(ok);
    const bad = { databases: { a: 'postgres://u@h/db', lite: { type: 'sqlite' }, my: { type: 'mysql', uri: 'x' } }, syncs: {} };
    expectConfigInvalid(await caught(() => defineConfig(bad as never)), 'databases.lite.filename', 'databases.my.uri');
  });

  it('a missing driver is CONFIG_INVALID saying which package to install', async () => {
    const err = await caught(loadDriver('redis', 'cache', () => import('pgferry-no-such-driver-package' as string)));
    expectConfigInvalid(err, 'cache.type');
    expect(err.message).toContain('npm install ioredis');
    const lite = await caught(loadDriver('sqlite', 'lite', () => import('pgferry-no-such-driver-package' as string)));
    expect(lite.message).toContain('npm install better-sqlite3@12');
  });

  it('install() checks that they answer; a password in their URI is in no message', async () => {
    const [a] = (await createDatabases(1)) as [TestDb];
    await a.sql('CREATE TABLE t (id int PRIMARY KEY)');
    const port = await closedPort();
    for (const [config, secret] of [
      [{ type: 'mysql', uri: `mysql://app:my-Secret-pw@127.0.0.1:${port}/shop` }, 'my-Secret-pw'],
      [{ type: 'redis', url: `redis://app:redis-Secret-pw@127.0.0.1:${port}/0` }, 'redis-Secret-pw'],
    ] as const) {
      const rep = replicators.create();
      await rep.addDatabase('a', a.url);
      await rep.addDatabase('b', config);
      await rep.addSync('s', { tables: ['t'], databases: { a: 'source', b: 'target' }, autokick: false });
      const err = await caught(rep.install());
      expect(err.code).toBe('CONNECTION_FAILED');
      expect(err.database).toBe('b');
      expectNoSecret(err, secret);
      expect(JSON.stringify(rep.status())).not.toContain(secret);
    }
  });

  it('validate() refuses a sync with such a receiver, saying what to do instead', async () => {
    const [a] = (await createDatabases(1)) as [TestDb];
    const rep = replicators.create();
    await rep.addDatabase('a', a.url);
    await rep.addDatabase('lite', SQLITE);
    await rep.addSync('s', { tables: ['t'], databases: { a: 'source', lite: 'target' } });
    const err = await caught(rep.validate('s'));
    expect(err.code).toBe('NOT_SUPPORTED');
    expect(err.database).toBe('lite');
    expect(err.message).toContain("onetimecopy: 'always'");
  });
});
