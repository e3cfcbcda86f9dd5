/**
 * Two writable databases kept equal, with a resolver that merges conflicting rows column by
 * column. Run: npm run build && npx tsx examples/multi-master.ts
 */
import { Replicator, type Conflict } from 'pgferry';
import { provideServers, withDatabase } from '../tools/pg-servers.js';
import { runExample, sql } from './support.js';


async function main(): Promise<void> {
  const servers = await provideServers(2);
  const rep = new Replicator();
  try {
    const [eu, us] = servers.map((s) => withDatabase(s.url, 'inventory')) as [string, string];
    for (const s of servers) await sql(s.url, 'CREATE DATABASE inventory');
    for (const url of [eu, us]) await sql(url, 'CREATE TABLE items (sku text PRIMARY KEY, name text, qty int)');

    await rep.addDatabase('eu', eu);
    await rep.addDatabase('us', us);
    await rep.addSync('inventory', {
      tables: ['items'],
      databases: { eu: 'source', us: 'source' },
      // The name from Europe, the quantity from the US.
      conflictStrategy: (c: Conflict) => {
        const [a, b] = [c.rows.eu, c.rows.us];
        if (!a || !b) return { winner: a ? 'eu' : 'us' };
        return { row: { ...a, qty: b.qty } };
      },
    });
    rep.on('conflict', (e) => console.log(`conflict on ${e.table} ${JSON.stringify(e.key)}: ${e.resolution}`));
    await rep.install();

    await sql(eu, `INSERT INTO items VALUES ('A-1', 'Anvil', 10), ('B-2', 'Bolt', 500)`);
    await sql(us, `INSERT INTO items VALUES ('C-3', 'Crate', 7)`);
    await rep.kick('inventory');

    // Both sides change the same row before the next run.
    await sql(eu, `UPDATE items SET name = 'Anvil (large)' WHERE sku = 'A-1'`);
    await sql(us, `UPDATE items SET qty = 8 WHERE sku = 'A-1'`);
    const r = await rep.kick('inventory');
    console.log('run:', r.tables);

    for (const [name, url] of [['eu', eu], ['us', us]] as const) {
      console.log(name, await sql(url, 'SELECT * FROM items ORDER BY sku'));
    }
    const v = await rep.validate('inventory');
    console.log(v.equal ? 'both databases hold the same rows' : JSON.stringify(v.tables));
  } finally {
    await rep.stop();
    await Promise.all(servers.map((s) => s.stop()));
  }
}

runExample(main);
