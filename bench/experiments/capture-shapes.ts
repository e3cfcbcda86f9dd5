/**
 * Experiment (not part of the suite): what each part of capture costs pgbench TPC-B.
 *
 * Four twin databases on one server (durable settings), pgbench -i -s 10 each, plus a key on
 * pgbench_history:
 *   plain      no triggers
 *   pgferry    pgferry's capture as installed by rep.install()
 *   no-notify  pgferry's capture with the `PERFORM pg_notify(...)` line removed
 *   row-level  a hand-written FOR EACH ROW trigger writing the same delta rows, no notify
 * Slices of pgbench run interleaved in rotating order; prints TPS per variant per round and
 * the median overhead against plain.
 *
 *   npx tsx bench/experiments/capture-shapes.ts [--rounds=4] [--seconds=5] [--scale=10]
 */
import { Replicator } from '../../src/index.js';
import { startEmbeddedServer } from '../../tools/pg-servers.js';
import { createDb, type BenchDb, type BenchServer } from '../lib/pg.js';
import { findClientTools, pgbenchRun } from '../lib/pgbench.js';
import { median } from '../lib/stats.js';
import { tpcbDatabase } from '../scenarios/overhead.js';

const TABLES = ['pgbench_accounts', 'pgbench_tellers', 'pgbench_branches', 'pgbench_history'];
const KEYS: Record<string, string> = { pgbench_accounts: 'aid', pgbench_tellers: 'tid', pgbench_branches: 'bid', pgbench_history: 'hid' };
const arg = (name: string, d: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? d);

async function installPgferry(db: BenchDb, target: BenchDb): Promise<void> {
  const rep = new Replicator();
  await rep.addDatabase('s', db.url);
  await rep.addDatabase('t', target.url);
  await rep.addSync('x', { tables: TABLES, databases: { s: 'source', t: 'target' } });
  await rep.install();
  await rep.stop();
}

async function stripNotify(db: BenchDb): Promise<number> {
  const fns = await db.sql<{ d: string }>(
    `SELECT pg_get_functiondef(p.oid) AS d FROM pg_proc p WHERE p.pronamespace = 'pgferry'::regnamespace AND p.prosrc LIKE '%pg_notify%'`,
  );
  for (const f of fns) await db.sql(f.d.replace(/PERFORM pg_notify\([^;]*\);/g, ''));
  return fns.length;
}

async function installRowLevel(db: BenchDb): Promise<void> {
  await db.sql('CREATE SCHEMA rl');
  for (const t of TABLES) {
    const k = KEYS[t]!;
    const type = k === 'hid' ? 'bigint' : 'int';
    await db.sql(`CREATE TABLE rl.d_${t} (${k} ${type} NOT NULL, txid xid8 NOT NULL, changed_at timestamptz NOT NULL, applied_by text, origin text)`);
    await db.sql(`CREATE INDEX ON rl.d_${t} (txid)`);
    await db.sql(`CREATE FUNCTION rl.c_${t}() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'DELETE' THEN
          INSERT INTO rl.d_${t} VALUES (OLD.${k}, pg_current_xact_id(), clock_timestamp(), nullif(current_setting('pgferry.applied_by', true), ''), nullif(current_setting('pgferry.origin', true), ''));
        ELSE
          INSERT INTO rl.d_${t} VALUES (NEW.${k}, pg_current_xact_id(), clock_timestamp(), nullif(current_setting('pgferry.applied_by', true), ''), nullif(current_setting('pgferry.origin', true), ''));
          IF TG_OP = 'UPDATE' AND OLD.${k} IS DISTINCT FROM NEW.${k} THEN
            INSERT INTO rl.d_${t} VALUES (OLD.${k}, pg_current_xact_id(), clock_timestamp(), NULL, NULL);
          END IF;
        END IF;
        RETURN NULL;
      END $$`);
    await db.sql(`CREATE TRIGGER rl_capture AFTER INSERT OR UPDATE OR DELETE ON ${t} FOR EACH ROW EXECUTE FUNCTION rl.c_${t}()`);
  }
}

async function main(): Promise<void> {
  const rounds = arg('rounds', 4);
  const seconds = arg('seconds', 5);
  const scale = arg('scale', 10);
  const tools = await findClientTools();
  if (!tools) throw new Error('pgbench not found');
  const [ha, hb] = await Promise.all([startEmbeddedServer({ fast: false }), startEmbeddedServer({ fast: false })]);
  try {
    const a: BenchServer = { id: 'a', url: ha!.url, version: String(ha!.version) };
    const b: BenchServer = { id: 'b', url: hb!.url, version: String(hb!.version) };
    const names = ['plain', 'pgferry', 'no-notify', 'row-level'] as const;
    const dbs = new Map<string, BenchDb>();
    for (const n of names) dbs.set(n, await createDb(a, n.replace('-', '_')));
    const tgt = await createDb(b, 'tgt');
    await Promise.all([...dbs.values(), tgt].map((d) => tpcbDatabase(tools, d, scale)));
    await installPgferry(dbs.get('pgferry')!, tgt);
    await installPgferry(dbs.get('no-notify')!, tgt);
    console.log(`no-notify: stripped pg_notify from ${await stripNotify(dbs.get('no-notify')!)} functions`);
    await installRowLevel(dbs.get('row-level')!);
    const tps = new Map<string, number[]>(names.map((n) => [n, []]));
    const args = ['-n', '-c', '4', '-j', '2', '-T', String(seconds), '-M', 'prepared'];
    for (let r = 0; r < rounds; r++) {
      const order = [...names.slice(r % names.length), ...names.slice(0, r % names.length)];
      for (const n of order) {
        const db = dbs.get(n)!;
        await db.sql(`VACUUM ANALYZE ${TABLES.join(', ')}`);
        await db.sql('CHECKPOINT');
        tps.get(n)!.push((await pgbenchRun(tools, db, args)).tps);
      }
      console.log(`round ${r + 1}: ${names.map((n) => `${n} ${tps.get(n)!.at(-1)!.toFixed(0)}`).join(', ')}`);
    }
    const plain = tps.get('plain')!;
    for (const n of names) {
      const xs = tps.get(n)!;
      const over = xs.map((x, i) => ((plain[i]! - x) / plain[i]!) * 100);
      console.log(`${n.padEnd(10)} median ${median(xs).toFixed(0)} tps, overhead vs plain (median of rounds) ${median(over).toFixed(1)} %`);
    }
  } finally {
    await Promise.all([ha!.stop(), hb!.stop()]);
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
