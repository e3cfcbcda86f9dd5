/**
 * Server time of the read-only statements of a one-row run: records the statements of a kick,
 * then replays the registry and catalog-stamps reads 200 times each on a session of their own
 * (prepared, as a run sends them) and prints the mean round trip beside `SELECT 1`, and each
 * one's EXPLAIN ANALYZE.
 *
 *   npx tsx bench/experiments/replay-reads.ts
 */
import pg from 'pg';
import { Replicator } from '../../src/index.js';
import { createDb, withEmbeddedPair } from '../lib/pg.js';

const seen: { text: string; values?: unknown[] }[] = [];
const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
const original = proto.query;
let recording = false;
proto.query = function (this: pg.Client, ...args: unknown[]) {
  const first = args[0] as { text?: string; values?: unknown[] } | string;
  if (recording && typeof first === 'object' && first?.text) seen.push({ text: first.text, values: first.values ?? (args[1] as unknown[] | undefined) });
  return original.apply(this, args);
};

async function time(c: pg.Client, text: string, values: unknown[] | undefined, n: number): Promise<number> {
  const name = `r${Math.random().toString(36).slice(2)}`;
  for (let i = 0; i < 5; i++) await c.query({ name, text, values });
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await c.query({ name, text, values });
  return (performance.now() - t0) / n;
}

void withEmbeddedPair(false, async (a, b) => {
  const src = await createDb(a, 'rr_src');
  const tgt = await createDb(b, 'rr_tgt');
  for (const db of [src, tgt]) await db.sql('CREATE TABLE t (id int PRIMARY KEY, v text)');
  const rep = new Replicator();
  await rep.addDatabase('src', src.url);
  await rep.addDatabase('tgt', tgt.url);
  await rep.addSync('p', { tables: ['t'], databases: { src: 'source', tgt: 'target' } });
  await rep.install();
  await rep.kick('p');
  await src.sql(`INSERT INTO t VALUES (1, 'x')`);
  recording = true;
  await rep.kick('p');
  recording = false;
  await rep.stop();
  const c = new pg.Client({ connectionString: src.url });
  await c.connect();
  console.log(`SELECT 1: ${(await time(c, 'SELECT 1', undefined, 200)).toFixed(3)} ms`);
  for (const q of seen.filter((x) => /^(WITH stamps|SELECT q\.i)/.test(x.text))) {
    const values = q.values?.map((v, i) => (i === 1 && typeof v === 'string' && /^\d+:\d+:/.test(v) ? v : v));
    const ms = await time(c, q.text, values, 200);
    await c.query('SET plan_cache_mode = force_generic_plan');
    const generic = await time(c, q.text, values, 200);
    await c.query('RESET plan_cache_mode');
    const plan = await c.query({ text: `EXPLAIN (ANALYZE, SUMMARY) ${q.text}`, values });
    const lines = plan.rows.map((r) => r['QUERY PLAN'] as string);
    console.log(`${q.text.replace(/\s+/g, ' ').slice(0, 60)}: ${ms.toFixed(3)} ms (generic plan: ${generic.toFixed(3)} ms); ${lines.filter((l) => /Planning Time|Execution Time/.test(l)).join(', ')}`);
  }
  await c.end();
  await src.drop();
  await tgt.drop();
});
