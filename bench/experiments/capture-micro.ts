/**
 * Experiment (not part of the suite): what one captured statement costs, per capture shape,
 * measured inside one backend (no commit, no client round trip per statement), so that the
 * figure is the trigger's own CPU. Each trial runs, in one DO block, N single-row UPDATEs, N
 * single-row INSERTs and N single-row DELETEs (TPC-B's statements are single-row) and, for the
 * bulk case, one 100k-row UPDATE. Trials of all shapes interleave; the minimum of each is
 * reported (the machine's other load only ever adds time).
 *
 *   npx tsx bench/experiments/capture-micro.ts [--trials=7] [--n=5000]
 */
import { readTable } from '../../src/catalog/tables.js';
import type { TableInfo } from '../../src/catalog/tables.js';
import { captureFunctionSql, deltaTableSql, triggersSql, type CaptureMode } from '../../src/capture/ddl.js';
import { startEmbeddedServer } from '../../tools/pg-servers.js';
import { createDb, withClient, type BenchServer } from '../lib/pg.js';

const arg = (name: string, d: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? d);

const SCHEMA = 'pgferry';

/** A capture function as installed, rewritten. */
type Rewrite = (fn: string) => string;
const noNotify: Rewrite = (f) => f.replace(/ {2}IF pg_catalog\.current_setting\('pgferry\.notified_[\s\S]*?END IF;\n/, '');

/** Row-level, the delta table's defaults filling txid, time and origin: one INSERT of the key. */
function rowDefaults(): string {
  return `CREATE OR REPLACE FUNCTION ${SCHEMA}.rl_capture() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $f$
BEGIN
  IF TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN
    INSERT INTO ${SCHEMA}.d (id) VALUES (OLD.id);
  ELSE
    INSERT INTO ${SCHEMA}.d (id) VALUES (NEW.id);
    IF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' AND OLD.id OPERATOR(pg_catalog.<>) NEW.id THEN
      INSERT INTO ${SCHEMA}.d (id) VALUES (OLD.id);
    END IF;
  END IF;
  RETURN NULL;
END $f$`;
}

interface Shape {
  name: string;
  /** Statements that install the shape, given the table and delta names rewritten to `d`. */
  install: (t: TableInfo) => string[];
}

const d = (sql: string) => sql.replace(/delta_\w+/g, 'd');
/** pgferry's capture in `mode`, as install() makes it (its function rewritten by `rw`). */
const installed = (mode: CaptureMode, rw: Rewrite = (f) => f): Shape['install'] => (t) => [rw(d(captureFunctionSql(SCHEMA, t, mode))), ...triggersSql(SCHEMA, t, mode)];
const SHAPES: Shape[] = [
  { name: 'none', install: () => [] },
  { name: "capture 'statement'", install: installed('statement') },
  { name: "capture 'statement', no notify", install: installed('statement', noNotify) },
  { name: "capture 'row'", install: installed('row') },
  { name: "capture 'row', no notify", install: installed('row', noNotify) },
  { name: 'row, key only (delta defaults fill the rest)', install: () => [rowDefaults(), `CREATE TRIGGER rl AFTER INSERT OR UPDATE OR DELETE ON public.t FOR EACH ROW EXECUTE FUNCTION ${SCHEMA}.rl_capture()`] },
];

async function main(): Promise<void> {
  const trials = arg('trials', 7);
  const n = arg('n', 5000);
  const h = await startEmbeddedServer({ fast: false });
  try {
    const server: BenchServer = { id: 'a', url: h.url, version: String(h.version) };
    const db = await createDb(server, 'micro');
    await withClient(db.url, async (c) => {
      await c.query(`SET statement_timeout = '30s'`);
      await c.query(`CREATE TABLE public.t (id int PRIMARY KEY, v int NOT NULL)`);
      await c.query(`INSERT INTO public.t SELECT g, 0 FROM generate_series(1, 100000) g`);
      await c.query(`CREATE SCHEMA ${SCHEMA}; CREATE TABLE ${SCHEMA}.truncates (table_schema text, table_name text, txid xid8, changed_at timestamptz, applied_by text, origin text)`);
      const t = (await readTable(c, { schema: 'public', name: 't' }))!;
      await c.query(deltaTableSql(SCHEMA, t).replace(/delta_\w+/g, 'd'));
      await c.query(`ALTER TABLE ${SCHEMA}.d ALTER txid SET DEFAULT pg_catalog.pg_current_xact_id(), ALTER changed_at SET DEFAULT pg_catalog.clock_timestamp(),
        ALTER applied_by SET DEFAULT NULLIF(pg_catalog.current_setting('pgferry.applied_by', true), ''),
        ALTER origin SET DEFAULT NULLIF(pg_catalog.current_setting('pgferry.origin', true), '')`);
      const ms = new Map<string, { single: number[]; bulk: number[] }>(SHAPES.map((s) => [s.name, { single: [], bulk: [] }]));
      for (let trial = 0; trial < trials; trial++) {
        for (const shape of SHAPES) {
          await c.query(`DROP TRIGGER IF EXISTS rl ON public.t; DROP FUNCTION IF EXISTS ${SCHEMA}.rl_capture()`);
          for (const tr of ["_ins", "_upd", "_del", "_trunc"]) await c.query(`DROP TRIGGER IF EXISTS "pgferry_capture${tr}" ON public.t`);
          await c.query(`TRUNCATE ${SCHEMA}.d`);
          for (const sql of shape.install(t)) await c.query(sql);
          await c.query('VACUUM public.t');
          const t0 = performance.now();
          await c.query(`DO $$ BEGIN
              FOR i IN 1..${n} LOOP UPDATE public.t SET v = v + 1 WHERE id = i; END LOOP;
              FOR i IN 1..${n} LOOP INSERT INTO public.t VALUES (200000 + i, 0); END LOOP;
              FOR i IN 1..${n} LOOP DELETE FROM public.t WHERE id = 200000 + i; END LOOP;
            END $$`);
          const t1 = performance.now();
          await c.query('UPDATE public.t SET v = v + 1');
          const t2 = performance.now();
          ms.get(shape.name)!.single.push(((t1 - t0) * 1000) / (3 * n));
          ms.get(shape.name)!.bulk.push(t2 - t1);
        }
        console.error(`trial ${trial + 1}/${trials} done`);
      }
      const base = ms.get('none')!;
      const min = (xs: number[]) => Math.min(...xs);
      console.log(`| shape | single-row statement, µs (min of ${trials}) | added per statement, µs | 100k-row UPDATE, ms | vs none |`);
      console.log('|---|---|---|---|---|');
      for (const s of SHAPES) {
        const m = ms.get(s.name)!;
        console.log(`| ${s.name} | ${min(m.single).toFixed(1)} | ${(min(m.single) - min(base.single)).toFixed(1)} | ${min(m.bulk).toFixed(0)} | ${(min(m.bulk) / min(base.bulk)).toFixed(2)}x |`);
      }
    });
  } finally {
    await h.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
