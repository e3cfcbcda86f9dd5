/**
 * Fill a new database from a live one (PostgreSQL 15 → the embedded, newer server, when
 * Debian's PostgreSQL 15 is installed), with a progress bar, while writes go on; then keep
 * it in sync. Run: npm run build && npx tsx examples/first-load.ts
 */
import pg from 'pg';
import { Replicator } from 'pgferry';
import { provideServers, startSystemServer, systemBinDir, withDatabase, type ServerHandle } from '../tools/pg-servers.js';
import { runExample, sql } from './support.js';


function bar(done: number, total: number): string {
  const f = total > 0 ? Math.min(1, done / total) : 0;
  return `[${'#'.repeat(Math.round(f * 30)).padEnd(30)}] ${(f * 100).toFixed(0).padStart(3)}% ${done}/${total}`;
}

async function main(): Promise<void> {
  const pg15 = systemBinDir(15);
  const servers: ServerHandle[] = [];
  const rep = new Replicator();
  try {
    servers.push(pg15 ? await startSystemServer(pg15) : (await provideServers(1))[0]!);
    servers.push((await provideServers(1))[0]!);
    const [oldUrl, newUrl] = servers.map((s) => withDatabase(s.url, 'app')) as [string, string];
    console.log(`old: PostgreSQL ${servers[0]!.version}, new: PostgreSQL ${servers[1]!.version}`);
    for (const s of servers) await sql(s.url, 'CREATE DATABASE app');
    for (const url of [oldUrl, newUrl]) await sql(url, 'CREATE TABLE events (id bigint PRIMARY KEY, kind text, payload jsonb, at timestamptz)');
    await sql(oldUrl, `INSERT INTO events SELECT g, 'k' || g % 10, jsonb_build_object('n', g), now() FROM generate_series(1, 300000) g`);
    await sql(oldUrl, 'ANALYZE events');

    await rep.addDatabase('old', oldUrl);
    await rep.addDatabase('new', newUrl);
    await rep.addSync('move', { tables: ['events'], databases: { old: 'source', new: 'target' }, onetimecopy: 'always' });
    await rep.install();
    rep.on('copy:progress', (p) => process.stdout.write(`\r${p.table} ${bar(p.rows, p.totalEstimate)}${p.done ? '\n' : ''}`));

    // Writes go on during the copy.
    let stop = false;
    let n = 300000;
    const writer = (async () => {
      const c = new pg.Client({ connectionString: oldUrl });
      await c.connect();
      while (!stop) {
        n++;
        await c.query(`INSERT INTO events VALUES ($1, 'live', '{}', now())`, [n]);
        await c.query(`UPDATE events SET kind = 'touched' WHERE id = $1`, [1 + (n % 300000)]);
      }
      await c.end();
    })();
    const first = await rep.kick('move');
    console.log(`first load: ${first.tables['public.events']!.upserted} rows in ${first.durationMs} ms`);
    await rep.kick('move');
    stop = true;
    await writer;
    const last = await rep.kick('move');
    console.log(`caught up: ${last.tables['public.events']!.upserted} rows in the last run`);
    const v = await rep.validate('move');
    console.log(v.equal ? `equal: ${v.tables['public.events']!.rows.new} rows on both` : 'DIFFERENT');
    await rep.uninstall();
  } finally {
    await rep.stop();
    await Promise.all(servers.map((s) => s.stop()));
  }
}

runExample(main);
