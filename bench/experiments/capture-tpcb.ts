/**
 * Experiment (not part of the suite): what each capture shape costs pgbench TPC-B. Interleaved
 * pgbench runs on copies of one TPC-B database (scale 10, -c 4 -j 2, prepared; durable commits
 * unless --async), each with a
 * different capture installed on the four pgbench tables:
 *
 * - none: no triggers;
 * - row / statement: pgferry's capture as install() makes it, `capture: 'row'` / `'statement'`;
 * - row, no notify: the row-level function without its pg_notify;
 * - row, empty body: the row-level triggers with a function that only returns (the floor of
 *   any PL/pgSQL row trigger);
 * - statement, empty body: the statement-level triggers (transition tables) with a function
 *   that only returns;
 * - statement, no transition tables: statement-level triggers without REFERENCING, empty body.
 * - before row (, empty body): the row-level function as BEFORE ROW triggers (no after-trigger
 *   queue), returning the row; ', invoker': and SECURITY INVOKER instead of DEFINER.
 *
 *   npx tsx bench/experiments/capture-tpcb.ts [--seconds=8] [--trials=3] [--only=none+row] [--async]
 */
import pg from 'pg';
import { Replicator } from '../../src/index.js';
import { startEmbeddedServer } from '../../tools/pg-servers.js';
import { createDb, type BenchDb, type BenchServer } from '../lib/pg.js';
import { findClientTools, pgbenchRun } from '../lib/pgbench.js';
import { prepare, tpcbDatabase, TABLES } from '../scenarios/overhead.js';

const arg = (name: string, d: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? d);

const VARIANTS = [
  'none',
  'row',
  'statement',
  'row, no notify',
  'row, empty body',
  'statement, empty body',
  'statement, no transition tables',
  'before row',
  'before row, empty body',
  'before row, empty body, invoker',
  'before row, update and delete',
  'row, listened',
] as const;
type Variant = (typeof VARIANTS)[number];

/** The capture functions install() made in `db`, rewritten by `edit`. */
async function rewriteFunctions(db: BenchDb, edit: (def: string) => string): Promise<void> {
  const fns = await db.sql<{ def: string }>(
    `SELECT pg_get_functiondef(p.oid) AS def FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'pgferry' AND p.proname LIKE 'capture\\_%'`,
  );
  for (const f of fns) await db.sql(edit(f.def));
}

async function setUp(server: BenchServer, v: Variant, tools: NonNullable<Awaited<ReturnType<typeof findClientTools>>>): Promise<BenchDb> {
  const db = await createDb(server, 'ct');
  // --async: commits do not wait for the disk (its flush times vary more than capture costs).
  if (process.argv.includes('--async')) await db.sql(`ALTER DATABASE ${db.name} SET synchronous_commit = off`);
  await tpcbDatabase(tools, db, 10);
  if (v === 'none') return db;
  const tgt = await createDb(server, 'ctt');
  const rep = new Replicator();
  await rep.addDatabase('src', db.url);
  await rep.addDatabase('tgt', tgt.url);
  await rep.addSync('s', { tables: TABLES, databases: { src: 'source', tgt: 'target' }, capture: v.includes('row') ? 'row' : 'statement' });
  await rep.install();
  await rep.stop();
  if (v === 'row, no notify') await rewriteFunctions(db, (f) => f.replace(/ {2}IF pg_catalog\.current_setting\('pgferry\.notified_[\s\S]*?END IF;\n/, ''));
  if (v === 'statement, empty body' || v.includes('row, empty body')) await rewriteFunctions(db, (f) => f.replace(/\nBEGIN[\s\S]*END\s*\$pgferry\$/, '\nBEGIN RETURN NULL; END $pgferry$'));
  if (v.endsWith('invoker')) await rewriteFunctions(db, (f) => f.replace('SECURITY DEFINER', 'SECURITY INVOKER'));
  if (v.startsWith('before row')) {
    // A BEFORE trigger returns the row (NULL would cancel the change).
    await rewriteFunctions(db, (f) => f.replace(/RETURN NULL;\s*END\s*\$pgferry\$/, `IF TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN RETURN OLD; END IF; RETURN NEW; END $pgferry$`));
    for (const t of TABLES) {
      const events = [['_ins', 'INSERT'], ['_upd', 'UPDATE'], ['_del', 'DELETE']] as const;
      // 'update and delete': INSERTs stay AFTER (a BEFORE INSERT also fires for ON CONFLICT DO NOTHING).
      for (const [suffix, event] of v.endsWith('update and delete') ? events.slice(1) : events) {
        const fn = (await db.sql<{ f: string }>(`SELECT tgfoid::regprocedure::text AS f FROM pg_trigger WHERE tgrelid = '${t}'::regclass AND tgname = 'pgferry_capture${suffix}'`))[0]!.f;
        await db.sql(`DROP TRIGGER "pgferry_capture${suffix}" ON ${t}`);
        await db.sql(`CREATE TRIGGER "pgferry_capture${suffix}" BEFORE ${event} ON ${t} FOR EACH ROW EXECUTE FUNCTION ${fn}`);
      }
    }
  }
  if (v === 'statement, no transition tables') {
    await db.sql(`CREATE FUNCTION pgferry.empty() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN RETURN NULL; END $f$`);
    for (const t of TABLES) {
      for (const suffix of ['_ins', '_upd', '_del']) await db.sql(`DROP TRIGGER "pgferry_capture${suffix}" ON ${t}`);
      await db.sql(`CREATE TRIGGER st AFTER INSERT OR UPDATE OR DELETE ON ${t} FOR EACH STATEMENT EXECUTE FUNCTION pgferry.empty()`);
    }
  }
  return db;
}

async function main(): Promise<void> {
  const seconds = arg('seconds', 8);
  const trials = arg('trials', 3);
  const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7).split('+');
  const tools = await findClientTools();
  if (!tools) throw new Error('pgbench not found (Debian: postgresql-client-15)');
  const h = await startEmbeddedServer({ fast: false });
  try {
    const server: BenchServer = { id: 'a', url: h.url, version: String(h.version) };
    const variants = VARIANTS.filter((v) => !only || only.includes(v));
    const dbs: { v: Variant; db: BenchDb }[] = [];
    for (const v of variants) dbs.push({ v, db: await setUp(server, v, tools) });
    const tps = new Map<Variant, number[]>(variants.map((v) => [v, []]));
    for (let trial = 0; trial < trials; trial++) {
      // Rotating order, so that drift over time hits every variant alike.
      for (let i = 0; i < dbs.length; i++) {
        const { v, db } = dbs[(i + trial) % dbs.length]!;
        await prepare(db);
        // 'listened': a session LISTENs on the library's channel, as a started replicator's does.
        const listener = v.endsWith('listened') ? new pg.Client({ connectionString: db.url }) : undefined;
        let heard = 0;
        if (listener) {
          await listener.connect();
          listener.on('notification', () => heard++);
          await listener.query('LISTEN pgferry');
        }
        const r = await pgbenchRun(tools, db, ['-n', '-c', '4', '-j', '2', '-M', 'prepared', '-T', String(seconds)]);
        if (listener) {
          await listener.end();
          console.error(`  ${heard} notifications heard`);
        }
        tps.get(v)!.push(r.tps);
        console.error(`trial ${trial + 1}/${trials} ${v}: ${r.tps.toFixed(0)} tps`);
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const base = median(tps.get('none') ?? [NaN]);
    console.log(`| capture | TPS, median of ${trials} | runs | vs none |`);
    console.log('|---|---|---|---|');
    for (const [v, xs] of tps) {
      console.log(`| ${v} | ${median(xs).toFixed(0)} | ${xs.map((x) => x.toFixed(0)).join(', ')} | ${(100 * (1 - median(xs) / base)).toFixed(0)} % lower |`);
    }
  } finally {
    await h.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
