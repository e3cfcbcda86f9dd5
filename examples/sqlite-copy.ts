/**
 * A local SQLite copy of two PostgreSQL tables, kept in sync: an edge service reads its
 * catalogue from a file. Needs the optional peer dependency: npm install better-sqlite3@12.
 * Run: npx tsx examples/sqlite-copy.ts
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Replicator } from 'pgferry';
import { provideServers, withDatabase, type ServerHandle } from '../tools/pg-servers.js';
import { runExample, sql } from './support.js';


async function main(): Promise<void> {
  const servers: ServerHandle[] = [];
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pgferry-example-'));
  const rep = new Replicator();
  try {
    servers.push(...(await provideServers(1)));
    await sql(servers[0]!.url, 'CREATE DATABASE shop');
    const shop = withDatabase(servers[0]!.url, 'shop');
    await sql(shop, `
      CREATE TABLE products (id bigint PRIMARY KEY, name text NOT NULL, price numeric(10,2), tags text[], in_stock boolean);
      CREATE TABLE prices_changed (id int PRIMARY KEY, at timestamptz);
      INSERT INTO products VALUES (1, 'kettle', 24.90, '{kitchen}', true), (2, 'teapot', 31.00, '{kitchen,tea}', false);`);

    // The SQLite tables exist first, with the same column names (SQLite's own types).
    const file = path.join(dir, 'catalogue.db');
    const local = new Database(file);
    local.exec(`CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price TEXT, tags TEXT, in_stock INTEGER);
                CREATE TABLE prices_changed (id INTEGER PRIMARY KEY, at TEXT);`);

    await rep.addDatabase('shop', shop);
    await rep.addDatabase('edge', { type: 'sqlite', filename: file });
    await rep.addSync('catalogue', {
      tables: ['products', 'prices_changed'],
      databases: { shop: 'source', edge: 'target' },
      onetimecopy: 'ifEmpty', // the first run copies both tables
      autokick: false,
    });
    await rep.install();
    const first = await rep.kick('catalogue');
    console.log(`first run: ${first.totals.upserted} rows copied into ${path.basename(file)}`);

    await sql(shop, `UPDATE products SET price = 26.50 WHERE id = 1; DELETE FROM products WHERE id = 2;
                     INSERT INTO prices_changed VALUES (1, '2026-05-01 12:00:00+02');`);
    const next = await rep.kick('catalogue');
    console.log(`next run: ${next.totals.upserted} upserted, ${next.totals.deleted} deleted`);

    for (const row of local.prepare('SELECT * FROM products ORDER BY id').all()) console.log('products', JSON.stringify(row));
    for (const row of local.prepare('SELECT * FROM prices_changed').all()) console.log('prices_changed', JSON.stringify(row));
    local.close();
  } finally {
    await rep.stop();
    for (const s of servers) await s.stop();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

runExample(main);
