/**
 * The changed-keys statement of a 1M-row run (GROUP BY over the delta table into the key
 * table) under work_mem 64MB (what a run sets) and 256MB, alternated; prints each time and
 * the aggregate's plan line (spilled batches, memory).
 *
 *   npx tsx bench/experiments/keys-memory.ts [--rows=1000000] [--rounds=3]
 */
import pg from 'pg';
import { createDb, withEmbeddedPair } from '../lib/pg.js';

const arg = (name: string, d: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? d);

void withEmbeddedPair(false, async (a) => {
  const db = await createDb(a, 'keysmem');
  const rows = arg('rows', 1_000_000);
  await db.sql(`CREATE TABLE delta (id int NOT NULL, txid xid8 NOT NULL, changed_at timestamptz NOT NULL, applied_by text, origin text)`);
  await db.sql(`INSERT INTO delta SELECT g, pg_current_xact_id(), clock_timestamp(), NULL, NULL FROM generate_series(1, $1::int) g`, [rows]);
  await db.sql('VACUUM ANALYZE delta');
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  await c.query(`CREATE TEMP TABLE k ON COMMIT DELETE ROWS AS SELECT id, changed_at, origin AS pgferry_origin, 0::bigint AS pgferry_n FROM delta WITH NO DATA`);
  const sql = `INSERT INTO k SELECT id, max(changed_at), CASE WHEN min(coalesce(origin, '')) = max(coalesce(origin, '')) THEN max(origin) END, row_number() OVER ()
                 FROM delta WHERE applied_by IS DISTINCT FROM 'p' AND applied_by IS NULL GROUP BY id`;
  for (let r = 0; r < arg('rounds', 3); r++) {
    for (const mem of ['64MB', '256MB']) {
      await c.query(`BEGIN; SET LOCAL work_mem = '${mem}'`);
      const plan = await c.query(`EXPLAIN (ANALYZE, COSTS OFF) ${sql}`);
      await c.query('COMMIT');
      const lines = plan.rows.map((x) => x['QUERY PLAN'] as string);
      const agg = lines.find((l) => /Aggregate|Sort Method|Batches/.test(l) && /Batches|Memory|Disk/.test(l)) ?? lines.find((l) => /Aggregate/.test(l));
      console.log(`work_mem ${mem}: ${lines.find((l) => l.startsWith('Execution Time'))} | ${agg?.trim()}`);
    }
  }
  await c.end();
  await db.drop();
});
