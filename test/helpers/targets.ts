/**
 * Receivers that are not PostgreSQL in tests: a SQLite file in a temporary directory, a
 * database of its own on the file's MariaDB server, or a logical database of the file's Redis
 * server (flushed first), each with what a test needs: the config for addDatabase(), a way to
 * create a table there, and everything read back for comparison with the source.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, onTestFinished } from 'vitest';
import { startMariaDb, startRedis, type TargetServerHandle } from '../../tools/target-servers.js';

export type TargetKind = 'sqlite' | 'mysql' | 'redis';

/** A table as the tests here declare it, per kind. */
export interface TargetTable {
  name: string;
  /** SQLite and MySQL column definitions (Redis needs none). */
  sqlite: string;
  mysql: string;
  key: string[];
}

export interface TargetDb {
  kind: TargetKind;
  /** What addDatabase() takes. */
  config: { type: 'sqlite'; filename: string } | { type: 'mysql'; uri: string } | { type: 'redis'; url: string };
  /** Creates `t` there (nothing for Redis). */
  create(t: TargetTable): Promise<void>;
  /** Runs a statement of the kind (SQL, or a Redis command as an array). */
  exec(statement: string | string[]): Promise<unknown>;
  /** Every row of table `public.<name>` as stored, sorted by key; Redis: field → value, key columns added from the hash name. */
  rows(name: string, key: string[]): Promise<Record<string, unknown>[]>;
}

/** The kind's servers for the test file (started once) and a new database per call. */
export function targetServers(kind: TargetKind): { db(): Promise<TargetDb>; version(): string } {
  let server: TargetServerHandle | undefined;
  let dir = '';
  let redisDb = 0;
  beforeAll(async () => {
    if (kind === 'mysql') server = await startMariaDb();
    if (kind === 'redis') server = await startRedis({ password: 'redis-secret' });
    if (kind === 'sqlite') dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pgferry-sqlite-'));
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });
  return {
    version: () => (kind === 'sqlite' ? new Database(':memory:').prepare('SELECT sqlite_version() AS v').pluck().get() as string : server!.version),
    async db() {
      if (kind === 'sqlite') return sqliteDb(path.join(dir, `t_${randomBytes(4).toString('hex')}.db`));
      if (kind === 'mysql') return mysqlDb(server!.url);
      return redisDb_(server!.url, redisDb++ % 16);
    },
  };
}

function sqliteDb(filename: string): TargetDb {
  const open = () => {
    const db = new Database(filename);
    db.defaultSafeIntegers(true);
    return db;
  };
  return {
    kind: 'sqlite',
    config: { type: 'sqlite', filename },
    async create(t) {
      await this.exec(`CREATE TABLE "${t.name}" (${t.sqlite})`);
    },
    async exec(statement) {
      const db = open();
      try {
        db.exec(statement as string);
      } finally {
        db.close();
      }
    },
    async rows(name, key) {
      const db = open();
      try {
        return db.prepare(`SELECT * FROM "${name}" ORDER BY ${key.map((k) => `"${k}"`).join(', ')}`).all() as Record<string, unknown>[];
      } finally {
        db.close();
      }
    },
  };
}

async function mysqlDb(serverUrl: string): Promise<TargetDb> {
  const name = `t_${randomBytes(4).toString('hex')}`;
  const admin = await mysql.createConnection({ uri: serverUrl });
  await admin.query(`CREATE DATABASE ${name} CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin`);
  await admin.end();
  const uri = `${serverUrl.replace(/\/$/, '')}/${name}`;
  // JSON columns as the text stored, not parsed.
  const conn = () => mysql.createConnection({ uri, supportBigNumbers: true, bigNumberStrings: true, dateStrings: true, jsonStrings: true, timezone: 'Z', charset: 'utf8mb4' });
  onTestFinished(async () => {
    const c = await mysql.createConnection({ uri: serverUrl });
    await c.query(`DROP DATABASE IF EXISTS ${name}`);
    await c.end();
  });
  const exec = async (statement: string | string[]): Promise<unknown> => {
    const c = await conn();
    try {
      return (await c.query(statement as string))[0];
    } finally {
      await c.end();
    }
  };
  return {
    kind: 'mysql',
    config: { type: 'mysql', uri },
    async create(t) {
      await exec(`CREATE TABLE \`${t.name}\` (${t.mysql}) DEFAULT CHARSET = utf8mb4 COLLATE utf8mb4_nopad_bin`);
    },
    exec,
    async rows(table, key) {
      const c = await conn();
      try {
        return (await c.query(`SELECT * FROM \`${table}\` ORDER BY ${key.map((k) => `\`${k}\``).join(', ')}`))[0] as Record<string, unknown>[];
      } finally {
        await c.end();
      }
    },
  };
}

async function redisDb_(serverUrl: string, index: number): Promise<TargetDb> {
  const url = `${serverUrl}/${index}`;
  const client = new Redis(url);
  await client.flushdb();
  onTestFinished(async () => {
    client.disconnect();
  });
  return {
    kind: 'redis',
    config: { type: 'redis', url },
    async create() {
      // Hashes need no table.
    },
    async exec(statement) {
      const [cmd, ...args] = statement as string[];
      return client.call(cmd!, ...args);
    },
    async rows(table, key) {
      // Every member of the set and every hash of the table, so that a hash the set does not list fails a comparison.
      const prefix = `public.${table}:`;
      const names = new Set(await client.smembers(`${prefix}keys`));
      let cursor = '0';
      do {
        const [next, found] = await client.scan(cursor, 'MATCH', `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`, 'COUNT', 1000);
        cursor = next;
        for (const f of found) if (f !== `${prefix}keys`) names.add(f.slice(prefix.length));
      } while (cursor !== '0');
      const out: Record<string, unknown>[] = [];
      for (const m of names) {
        const parts = redisKeyParts(m);
        const row: Record<string, unknown> = Object.fromEntries(key.map((k, i) => [k, parts[i]]));
        Object.assign(row, await client.hgetall(`${prefix}${m}`));
        out.push(row);
      }
      const num = (v: unknown) => (/^-?\d+$/.test(String(v)) ? BigInt(String(v)) : String(v));
      return out.sort((a, b) => {
        for (const k of key) {
          const x = num(a[k]);
          const y = num(b[k]);
          if (x < y) return -1;
          if (x > y) return 1;
        }
        return 0;
      });
    },
  };
}

/** The key columns' texts of a Redis KEY (README: `\\` and `\:` escaped, `\keys` for `keys`). */
export function redisKeyParts(key: string): string[] {
  if (key === '\\keys') return ['keys'];
  const parts: string[] = [];
  let part = '';
  for (let i = 0; i < key.length; i++) {
    if (key[i] === '\\') part += key[++i] ?? '';
    else if (key[i] === ':') {
      parts.push(part);
      part = '';
    } else part += key[i];
  }
  return [...parts, part];
}

/** The simple table most tests use. */
export const T: TargetTable = {
  name: 't',
  key: ['id'],
  sqlite: 'id INTEGER PRIMARY KEY, v TEXT, n INTEGER',
  mysql: 'id INT PRIMARY KEY, v TEXT, n BIGINT',
};
export const T_PG = 'CREATE TABLE public.t (id int PRIMARY KEY, v text, n bigint)';

/** Rows of `t` as `id|v|n` text, from any kind (null as `∅`, absent fields too). */
export function asText(rows: Record<string, unknown>[], columns = ['id', 'v', 'n']): string[] {
  return rows.map((r) => columns.map((c) => (r[c] === null || r[c] === undefined ? '∅' : String(r[c]))).join('|'));
}
