/**
 * The MariaDB and Redis test servers of tools/target-servers.ts, for the non-PostgreSQL targets:
 * both started once for the file, checked with the command-line clients of the Debian packages
 * (mariadb, redis-cli), so the servers are checked by other code than the tools' own. Skipped,
 * with the reason printed, where the server programs are not installed and no URL is given.
 */
import { execFile } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  redisCommands,
  startMariaDb,
  startRedis,
  targetServerMissing,
  type TargetServerHandle,
} from '../tools/target-servers.js';

const run = promisify(execFile);

const why = targetServerMissing('mariadb') ?? targetServerMissing('redis');
if (why) console.log(`target-servers test skipped: ${why}`);

/** A string that needs utf8mb4 (the ship is 4 bytes in UTF-8), with a tab and a quote. */
const TEXT = "Grüße, 世界 🚢 l'été\t€";

/** Runs `sql` with the `mariadb` client over TCP as the URL's user; its rows, tab-separated, without headers. */
async function mariadb(url: string, sql: string, database?: string): Promise<string[][]> {
  const u = new URL(url);
  const args = [
    '--protocol=TCP', `--host=${u.hostname}`, `--port=${u.port}`, `--user=${decodeURIComponent(u.username)}`,
    '--default-character-set=utf8mb4', '--batch', '--skip-column-names', '--raw',
    ...(database ? [`--database=${database}`] : []),
    '--execute', sql,
  ];
  const { stdout } = await run('mariadb', args, { env: { ...process.env, MYSQL_PWD: decodeURIComponent(u.password) }, encoding: 'utf8' });
  return stdout.split('\n').filter((l) => l !== '').map((l) => l.split('\t'));
}

/** Runs redis-cli against the URL; what it printed, without the last newline. */
async function redisCli(url: string, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-u', url, '--no-auth-warning', ...args], { encoding: 'utf8' });
  return stdout.replace(/\n$/, '');
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.on('connect', () => { s.destroy(); resolve(false); });
    s.on('error', () => resolve(true));
  });
}

describe.skipIf(why !== null)('target test servers', () => {
  let my: TargetServerHandle | undefined;
  let redis: TargetServerHandle | undefined;

  beforeAll(async () => {
    my = await startMariaDb();
    redis = await startRedis({ password: 'pgferry-redis' });
  });

  afterAll(async () => {
    await Promise.all([my?.stop(), redis?.stop()]);
  });

  it('gives a MariaDB URL on loopback with a version', () => {
    expect(my!.url).toMatch(/^mysql:\/\/[^:]+:[^@]+@127\.0\.0\.1:\d+\/$/);
    expect(my!.version).toMatch(/^\d+\.\d+\.\d+/);
    if (my!.kind === 'system') expect(my!.version).toContain('MariaDB');
  });

  it('lets the test user create a database (utf8mb4 by default) and a table, and reads back a non-ASCII row', async () => {
    const url = my!.url;
    const db = `t_${process.pid}_${Date.now()}`;
    await mariadb(url, `CREATE DATABASE ${db}`);
    try {
      const [[charset]] = (await mariadb(url, `SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '${db}'`)) as [[string]];
      expect(charset).toBe('utf8mb4');
      await mariadb(url, 'CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(100) NOT NULL) ENGINE=InnoDB', db);
      const literal = TEXT.replace(/\\/g, '\\\\').replace(/'/g, "\\'");
      await mariadb(url, `INSERT INTO items VALUES (1, '${literal}')`, db);
      // --raw prints the value as stored; the tab inside it is escaped by HEX to keep the columns apart.
      expect(await mariadb(url, 'SELECT id, HEX(v), CHAR_LENGTH(v) FROM items', db)).toEqual([
        ['1', Buffer.from(TEXT, 'utf8').toString('hex').toUpperCase(), String([...TEXT].length)],
      ]);
      expect(await mariadb(url, "SELECT v FROM items WHERE v LIKE '%🚢%'", db)).toEqual([TEXT.split('\t')]);
    } finally {
      await mariadb(url, `DROP DATABASE ${db}`);
    }
  });

  it('gives a Redis URL on loopback that needs its password, with a version', async () => {
    expect(redis!.version).toMatch(/^\d+\.\d+\.\d+/);
    const u = new URL(redis!.url);
    expect(u.hostname).toBe('127.0.0.1');
    if (redis!.kind === 'system') {
      u.password = '';
      await expect(redisCommands(u.toString(), [['PING']])).rejects.toThrow(/NOAUTH/);
    }
    expect(await redisCommands(redis!.url, [['PING']])).toEqual(['PONG']);
  });

  it('stores and reads back a non-ASCII value in Redis (redis-cli)', async () => {
    const key = `pgferry:test:${process.pid}`;
    expect(await redisCli(redis!.url, 'SET', key, TEXT)).toBe('OK');
    expect(await redisCli(redis!.url, 'GET', key)).toBe(TEXT);
    expect(await redisCommands(redis!.url, [['GET', key], ['DEL', key], ['GET', key]])).toEqual([TEXT, '1', null]);
  });

  it.skipIf(process.env.PGFERRY_TEST_REDIS)('stop() shuts the server down and frees its port', async () => {
    const other = await startRedis();
    const port = Number(new URL(other.url).port);
    expect(await redisCli(other.url, 'PING')).toBe('PONG');
    await other.stop();
    expect(await refused(port)).toBe(true);
  });
});
