/**
 * Experiment (not part of the suite): what the capture triggers' pg_notify costs TPC-B.
 * Interleaved pgbench slices on three copies of one TPC-B database: no capture, capture as
 * installed, capture with the notify removed from the functions.
 *
 *   npx tsx bench/experiments/notify-tpcb.ts [--seconds=10] [--trials=3]
 */
import { Replicator } from '../../src/index.js';
import { deltaTableName } from '../../src/sql/names.js';
import { startEmbeddedServer } from '../../tools/pg-servers.js';
import { findClientTools, pgbenchRun } from '../lib/pgbench.js';
import { createDb, type BenchServer } from '../lib/pg.js';
import { prepare, tpcbDatabase, TABLES } from '../scenarios/overhead.js';

const arg = (name: string, d: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? d);

async function main(): Promise<void> {
  const seconds = arg('seconds', 10);
  const trials = arg('trials', 3);
  const tools = (await findClientTools())!;
  const h = await startEmbeddedServer({ fast: false });
  try {
    const server: BenchServer = { id: 'a', url: h.url, version: String(h.version) };
    const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7).split(',');
    const all = ['none', 'capture', 'capture, no notify', 'empty body', 'stmt-notrans-empty', 'row-level', 'row-level, no definer'] as const;
    const variants = all.filter((v) => !only || only.includes(v));
    const dbs = [];
    for (const v of variants) {
      const db = await createDb(server, 'nt');
      await tpcbDatabase(tools, db, 10);
      if (v !== 'none') {
        const tgt = await createDb(server, 'ntt');
        await tpcbDatabase(tools, tgt, 1);
        const rep = new Replicator();
        await rep.addDatabase('src', db.url);
        await rep.addDatabase('tgt', tgt.url);
        await rep.addSync('s', { tables: TABLES, databases: { src: 'source', tgt: 'target' }, autokick: true });
        await rep.install();
        await rep.stop();
        if (v === 'empty body') {
          const fns = await db.sql<{ def: string }>(
            `SELECT pg_get_functiondef(p.oid) AS def FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'pgferry' AND p.prosrc LIKE '%pg_notify%'`,
          );
          for (const f of fns) await db.sql(f.def.replace(/\nBEGIN[\s\S]*END\s*\$pgferry\$/, '\nBEGIN RETURN NULL; END $pgferry$'));
        }
        if (v === 'stmt-notrans-empty') {
          for (const t of TABLES) {
            for (const suf of ['_ins', '_upd', '_del']) await db.sql(`DROP TRIGGER "pgferry_capture${suf}" ON ${t}`);
            await db.sql(`CREATE OR REPLACE FUNCTION pgferry.empty() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN RETURN NULL; END $f$`);
            await db.sql(`CREATE TRIGGER st AFTER INSERT OR UPDATE OR DELETE ON ${t} FOR EACH STATEMENT EXECUTE FUNCTION pgferry.empty()`);
          }
        }
        if (v.startsWith('row-level')) {
          const keys: Record<string, string> = { pgbench_accounts: 'aid', pgbench_tellers: 'tid', pgbench_branches: 'bid', pgbench_history: 'hid' };
          for (const [t, k] of Object.entries(keys)) {
            const delta = deltaTableName({ schema: 'public', name: t });
            for (const suf of ['_ins', '_upd', '_del']) await db.sql(`DROP TRIGGER "pgferry_capture${suf}" ON ${t}`.replace('pgferry_capture', 'pgferry' + '_capture'));
            await db.sql(`CREATE FUNCTION pgferry.rl_${t}() RETURNS trigger LANGUAGE plpgsql ${v === 'row-level' ? 'SECURITY DEFINER' : ''} AS $f$
BEGIN
  IF TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN
    INSERT INTO pgferry.${delta} (${k}, txid, changed_at) VALUES (OLD.${k}, pg_catalog.pg_current_xact_id(), pg_catalog.clock_timestamp());
  ELSE
    INSERT INTO pgferry.${delta} (${k}, txid, changed_at) VALUES (NEW.${k}, pg_catalog.pg_current_xact_id(), pg_catalog.clock_timestamp());
  END IF;
  RETURN NULL;
END $f$`);
            await db.sql(`CREATE TRIGGER rl AFTER INSERT OR UPDATE OR DELETE ON ${t} FOR EACH ROW EXECUTE FUNCTION pgferry.rl_${t}()`);
          }
        }
        if (v === 'capture, no notify') {
          const fns = await db.sql<{ oid: string; def: string }>(
            `SELECT p.oid, pg_get_functiondef(p.oid) AS def FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'pgferry' AND p.prosrc LIKE '%pg_notify%'`,
          );
          for (const f of fns) await db.sql(f.def.replace(/PERFORM pg_catalog\.pg_notify\([^;]*\);/, ''));
        }
      }
      dbs.push({ v, db });
    }
    const tps = new Map<string, number[]>(variants.map((v) => [v, []]));
    for (let trial = 0; trial < trials; trial++) {
      for (const { v, db } of dbs) {
        await prepare(db);
        const r = await pgbenchRun(tools, db, ['-n', '-c', '4', '-j', '2', '-T', String(seconds)]);
        tps.get(v)!.push(r.tps);
        console.log(trial, v, r.tps.toFixed(0));
      }
    }
    for (const [v, xs] of tps) {
      const s = [...xs].sort((a, b) => a - b);
      console.log(`${v.padEnd(22)} median ${s[Math.floor(s.length / 2)]!.toFixed(0)} tps  (${s.map((x) => x.toFixed(0)).join(', ')})`);
    }
  } finally {
    await h.stop();
  }
}

void main().catch((e) => {
  console.error(e);
  process.exit(1);
});
