/**
 * What does the target's joined UPDATE of a big run cost, and what makes it cheaper? On one
 * embedded server (durable settings), a 1M-row table; each variant stages every row in a
 * temporary table as a run does and times the UPDATE (VACUUM and CHECKPOINT before each).
 *
 *   npx tsx bench/experiments/update-shapes.ts [--rows=1000000] [--rounds=2]
 */
import pg from 'pg';
import { createDb, withEmbeddedPair } from '../lib/pg.js';

const arg = (name: string, d: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? d);
const rows = arg('rows', 1_000_000);
const rounds = arg('rounds', 2);

const STAGE = `CREATE TEMP TABLE s ON COMMIT DELETE ROWS AS SELECT true AS pgferry_present, NULL::text AS pgferry_source, NULL::text AS pgferry_origin, 0::bigint AS pgferry_n, id, a, b, c FROM t WITH NO DATA`;
const UPDATE = `UPDATE public.t AS d SET a = s.a, b = s.b, c = s.c FROM pg_temp.s s WHERE s.pgferry_present AND true AND d.id OPERATOR(pg_catalog.=) s.id`;

type Variant = { name: string; setup?: string[]; order?: string; update?: string; plain?: boolean };
const VARIANTS: Variant[] = [
  { name: 'plain UPDATE (no join)', plain: true },
  { name: 'joined (as now)' },
  { name: 'joined, temp_buffers 256MB', setup: ["SET temp_buffers = '256MB'"] },
  { name: 'joined, staged in key order', order: 'ORDER BY id' },
  { name: 'joined, merge join', setup: ['SET enable_hashjoin = off'] },
  { name: 'joined, nested loop', setup: ['SET enable_hashjoin = off', 'SET enable_mergejoin = off'] },
];

async function main(): Promise<void> {
  const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7).split(',');
  await withEmbeddedPair(false, async (a) => {
    const db = await createDb(a, 'upd');
    await db.sql('CREATE TABLE t (id int PRIMARY KEY, a int NOT NULL, b text NOT NULL, c timestamptz NOT NULL)');
    await db.sql(`INSERT INTO t SELECT g, g, md5(g::text), now() FROM generate_series(1, $1::int) g`, [rows]);
    const times = new Map<string, number[]>();
    for (let r = 0; r < rounds; r++) {
      for (const v of VARIANTS.filter((x, i) => !only || only.includes(String(i)))) {
        await db.sql('VACUUM t');
        await db.sql('CHECKPOINT');
        const c = new pg.Client({ connectionString: db.url });
        await c.connect();
        for (const s of v.setup ?? []) await c.query(s);
        await c.query("SET work_mem = '64MB'");
        await c.query(STAGE);
        await c.query('BEGIN');
        let ms: number;
        if (v.plain) {
          const t0 = performance.now();
          await c.query('UPDATE t SET a = a + 1');
          ms = performance.now() - t0;
        } else {
          await c.query(`INSERT INTO s SELECT true, 'src', NULL, row_number() OVER (), id, a + 1, b, c FROM t ${v.order ?? ''}`);
          await c.query('SET LOCAL default_statistics_target = 10; ANALYZE pg_temp.s');
          const t0 = performance.now();
          await c.query(v.update ?? UPDATE);
          ms = performance.now() - t0;
          if (r === 0) {
            await c.query('ROLLBACK');
            await c.query('BEGIN');
            await c.query(`INSERT INTO s SELECT true, 'src', NULL, row_number() OVER (), id, a + 1, b, c FROM t ${v.order ?? ''}`);
            await c.query('ANALYZE pg_temp.s');
            const plan = await c.query(`EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ${v.update ?? UPDATE}`);
            console.log(`--- ${v.name}\n${plan.rows.map((x) => x['QUERY PLAN']).join('\n')}`);
          }
        }
        await c.query('COMMIT');
        await c.end();
        const l = times.get(v.name) ?? [];
        l.push(ms);
        times.set(v.name, l);
        console.log(`${v.name}: ${ms.toFixed(0)} ms`);
      }
    }
    console.log('\n## medians');
    for (const [k, l] of times) console.log(`${k}: ${[...l].sort((x, y) => x - y)[Math.floor(l.length / 2)]!.toFixed(0)} ms (${l.map((x) => x.toFixed(0)).join(', ')})`);
    await db.drop();
  });
}

void main();
