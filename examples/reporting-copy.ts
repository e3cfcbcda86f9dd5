/**
 * A reporting database fed from the application's: customers with their e-mail masked (and
 * test accounts left out), only the EU orders and only the columns reports need, products as
 * they are. Run: npm run build && npx tsx examples/reporting-copy.ts
 */
import { Replicator, type Row } from 'pgferry';
import { provideServers, withDatabase, type ServerHandle } from '../tools/pg-servers.js';
import { runExample, sql } from './support.js';


/** `ada@example.com` → `a***@example.com`. */
function mask(email: string): string {
  const [user = '', domain = ''] = email.split('@');
  return `${user.slice(0, 1)}***@${domain}`;
}

async function main(): Promise<void> {
  const servers: ServerHandle[] = [];
  const rep = new Replicator();
  try {
    servers.push(...(await provideServers(1)));
    const server = servers[0]!.url;
    for (const db of ['app', 'reporting']) await sql(server, `CREATE DATABASE ${db}`);
    const [app, reporting] = ['app', 'reporting'].map((db) => withDatabase(server, db)) as [string, string];
    await sql(app, `
      CREATE TABLE products (id int PRIMARY KEY, name text, price numeric(10,2));
      CREATE TABLE customers (id int PRIMARY KEY, name text, email text, test boolean DEFAULT false, created timestamptz DEFAULT now());
      CREATE TABLE orders (id int PRIMARY KEY, customer_id int, total numeric(10,2), region text, card_number text, note text);
      INSERT INTO products VALUES (1, 'kettle', 24.90), (2, 'teapot', 31.00);
      INSERT INTO customers (id, name, email, test) VALUES (1, 'Ada', 'ada@example.com', false), (2, 'QA', 'qa@example.com', true), (3, 'Grace', 'grace@example.org', false);
      INSERT INTO orders VALUES (1, 1, 24.90, 'eu', '4111111111111111', 'gift'), (2, 3, 31.00, 'us', '5500000000000004', NULL), (3, 3, 55.90, 'eu', '340000000000009', NULL);`);
    // The reporting side has no card numbers or notes at all.
    await sql(reporting, `
      CREATE TABLE products (id int PRIMARY KEY, name text, price numeric(10,2));
      CREATE TABLE customers (id int PRIMARY KEY, name text, email text, test boolean, created timestamptz);
      CREATE TABLE orders (id int PRIMARY KEY, customer_id int, total numeric(10,2), region text);`);

    await rep.addDatabase('app', app);
    await rep.addDatabase('reporting', reporting);
    await rep.addSync('reporting', {
      tables: [
        'products',
        { table: 'customers', transform: (row: Row) => (row.test ? null : { ...row, email: mask(String(row.email)) }) },
        { table: 'orders', columns: ['customer_id', 'total', 'region'], where: "region = 'eu'" },
      ],
      databases: { app: 'source', reporting: 'target' },
      onetimecopy: 'always',
      autokick: false,
    });
    await rep.install();
    const first = await rep.kick('reporting');
    console.log(`first copy: ${JSON.stringify(first.totals)}`);

    // Changes go on: a new EU order, an order moved out of the EU, an e-mail change.
    await sql(app, `
      INSERT INTO orders VALUES (4, 1, 12.00, 'eu', '4111111111111111', 'express');
      UPDATE orders SET region = 'us' WHERE id = 1;
      UPDATE customers SET email = 'grace.hopper@example.org' WHERE id = 3;`);
    const next = await rep.kick('reporting');
    console.log(`next run: ${JSON.stringify(next.totals)}`);

    for (const table of ['customers', 'orders']) {
      console.log(`reporting.${table}:`);
      console.table(await sql(reporting, `SELECT * FROM ${table} ORDER BY id`));
    }
    const customers = await sql(reporting, `SELECT email FROM customers ORDER BY id`);
    const orders = await sql(reporting, `SELECT id FROM orders ORDER BY id`);
    const ok = JSON.stringify(customers.map((c) => c.email)) === JSON.stringify(['a***@example.com', 'g***@example.org']) &&
      JSON.stringify(orders.map((o) => o.id)) === JSON.stringify([3, 4]);
    console.log(ok ? 'reporting copy as expected' : 'UNEXPECTED reporting contents');
    if (!ok) process.exitCode = 1;
    await rep.uninstall();
  } finally {
    await rep.stop();
    await Promise.all(servers.map((s) => s.stop()));
  }
}

runExample(main);
