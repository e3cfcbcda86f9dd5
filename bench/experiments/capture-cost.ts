/**
 * Experiment (not part of the suite): server CPU and WAL per TPC-B transaction, per capture shape.
 *
 * TPS on this shared 2-core VM scatters by 30 % between slices; CPU seconds and WAL bytes per
 * transaction are steadier, and they are what a capture shape costs the writer. Twin databases
 * on one server (durable settings, autovacuum off so no worker's CPU lands in a slice), each
 * `pgbench -i -s 10` plus a key on pgbench_history, each with one capture shape:
 *
 *   plain        no triggers
 *   pgferry      the capture rep.install() installs
 *   <variants>   pgferry's capture rewritten (see VARIANTS)
 *
 * A warm-up round first (full-page images after the last checkpoint would dominate WAL), then
 * per slice `pgbench -t N -c 4`, no checkpoint in between (max_wal_size is raised); the server's CPU (postmaster, its children
 * alive and reaped) and WAL bytes over the slice, divided by the transactions.
 *
 *   npx tsx bench/experiments/capture-cost.ts [--rounds=3] [--tx=2000] [--only=a,b]
 */
import { readFileSync } from 'node:fs';
import { Replicator } from '../../src/index.js';
import { startEmbeddedServer } from '../../tools/pg-servers.js';
import { createDb, type BenchDb, type BenchServer } from '../lib/pg.js';
import { findClientTools, pgbenchRun } from '../lib/pgbench.js';
import { median } from '../lib/stats.js';
import { tpcbDatabase } from '../scenarios/overhead.js';

const TABLES = ['pgbench_accounts', 'pgbench_tellers', 'pgbench_branches', 'pgbench_history'];
const arg = (name: string, d: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? d);
const only = process.argv.find((a) => a.startsWith('--only='))?.split('=')[1]?.split(',');

/** Rewrites of pgferry's installed capture functions (each gets its own database). */
const VARIANTS: Record<string, (fnDef: string) => string> = {
  'no-notify': (d) => d.replace(/PERFORM pg_catalog\.pg_notify\([^;]*\);/g, ''),
  'no-set': (d) => d.replace(/\n SET search_path TO [^\n]*/, ''),
  'no-set-no-notify': (d) => VARIANTS['no-notify']!(VARIANTS['no-set']!(d)),
};

async function installPgferry(db: BenchDb, target: BenchDb): Promise<void> {
  const rep = new Replicator();
  await rep.addDatabase('s', db.url);
  await rep.addDatabase('t', target.url);
  await rep.addSync('x', { tables: TABLES, databases: { s: 'source', t: 'target' } });
  await rep.install();
  await rep.stop();
}

async function rewrite(db: BenchDb, fn: (d: string) => string): Promise<void> {
  const fns = await db.sql<{ d: string }>(`SELECT pg_get_functiondef(p.oid) AS d FROM pg_proc p WHERE p.pronamespace = 'pgferry'::regnamespace AND p.proname LIKE 'capture%'`);
  if (fns.length !== TABLES.length) throw new Error(`expected ${TABLES.length} capture functions, found ${fns.length}`);
  for (const f of fns) {
    const d = fn(f.d);
    if (d === f.d) throw new Error(`variant changed nothing in:\n${f.d}`);
    await db.sql(d);
  }
}

function ticks(pid: number, withChildren: boolean): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields after the name start at field 3 (state): utime=14, stime=15, cutime=16, cstime=17
  const n = (i: number) => Number(f[i - 3]);
  return n(14) + n(15) + (withChildren ? n(16) + n(17) : 0);
}

/** CPU ms of the whole server: the postmaster, every live child, and reaped children. */
function serverCpuMs(postmaster: number): number {
  let t = ticks(postmaster, true);
  const children = readFileSync(`/proc/${postmaster}/task/${postmaster}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  for (const c of children) {
    try {
      t += ticks(Number(c), false);
    } catch {
      // exited meanwhile: its CPU is in the postmaster's cutime once reaped
    }
  }
  return t * 10; // USER_HZ = 100
}

async function main(): Promise<void> {
  const rounds = arg('rounds', 3);
  const tx = arg('tx', 2000);
  const tools = await findClientTools();
  if (!tools) throw new Error('pgbench not found');
  const [ha, hb] = await Promise.all([startEmbeddedServer({ fast: false }), startEmbeddedServer({ fast: false })]);
  try {
    const a: BenchServer = { id: 'a', url: ha!.url, version: String(ha!.version) };
    const b: BenchServer = { id: 'b', url: hb!.url, version: String(hb!.version) };
    const names = ['plain', 'pgferry', ...Object.keys(VARIANTS)].filter((n) => !only || n === 'plain' || only.includes(n));
    const dbs = new Map<string, BenchDb>();
    for (const n of names) dbs.set(n, await createDb(a, n.replace(/-/g, '_')));
    const tgt = await createDb(b, 'tgt');
    await Promise.all([...dbs.values(), tgt].map((d) => tpcbDatabase(tools, d, 10)));
    for (const n of names.filter((x) => x !== 'plain')) {
      await installPgferry(dbs.get(n)!, tgt);
      if (VARIANTS[n]) await rewrite(dbs.get(n)!, VARIANTS[n]);
    }
    const admin = dbs.get('plain')!;
    await admin.sql('ALTER SYSTEM SET autovacuum = off');
    await admin.sql('SELECT pg_reload_conf()');
    const pid = (await admin.sql<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'`))[0]!.pid;
    const postmaster = Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
    const cpu = new Map<string, number[]>(names.map((n) => [n, []]));
    const wal = new Map<string, number[]>(names.map((n) => [n, []]));
    const tps = new Map<string, number[]>(names.map((n) => [n, []]));
    await admin.sql(`ALTER SYSTEM SET max_wal_size = '20GB'`);
    await admin.sql(`ALTER SYSTEM SET checkpoint_timeout = '1h'`);
    await admin.sql('SELECT pg_reload_conf()');
    await admin.sql('CHECKPOINT');
    for (const n of names) await pgbenchRun(tools, dbs.get(n)!, ['-n', '-c', '4', '-j', '2', '-t', String(tx), '-M', 'prepared']);
    for (let r = 0; r < rounds; r++) {
      const order = [...names.slice(r % names.length), ...names.slice(0, r % names.length)];
      for (const n of order) {
        const db = dbs.get(n)!;
        await db.sql(`VACUUM ANALYZE ${TABLES.join(', ')}`);
        if (n !== 'plain') await db.sql(`DO $$ DECLARE t text; BEGIN FOR t IN SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = 'pgferry' AND tablename LIKE 'delta%' LOOP EXECUTE 'TRUNCATE ' || t; END LOOP; END $$`);
        const l0 = (await db.sql<{ lsn: string }>('SELECT pg_current_wal_lsn() AS lsn'))[0]!.lsn;
        const c0 = serverCpuMs(postmaster);
        const res = await pgbenchRun(tools, db, ['-n', '-c', '4', '-j', '2', '-t', String(tx), '-M', 'prepared']);
        const c1 = serverCpuMs(postmaster);
        const bytes = (await db.sql<{ bytes: string }>('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1) AS bytes', [l0]))[0]!.bytes;
        const total = res.transactions;
        cpu.get(n)!.push(((c1 - c0) / total) * 1000);
        wal.get(n)!.push(Number(bytes) / total);
        tps.get(n)!.push(res.tps);
      }
      console.log(`round ${r + 1}: ${names.map((n) => `${n} ${cpu.get(n)!.at(-1)!.toFixed(0)} ms/1000tx ${wal.get(n)!.at(-1)!.toFixed(0)} B/tx ${tps.get(n)!.at(-1)!.toFixed(0)} tps`).join(' | ')}`);
    }
    const base = median(cpu.get('plain')!);
    const baseWal = median(wal.get('plain')!);
    for (const n of names) {
      const c = median(cpu.get(n)!);
      console.log(
        `${n.padEnd(18)} CPU ${c.toFixed(0)} ms/1000 tx (${(((c - base) / base) * 100).toFixed(1)} % over plain, spread ${Math.min(...cpu.get(n)!).toFixed(0)}–${Math.max(...cpu.get(n)!).toFixed(0)}), WAL ${median(wal.get(n)!).toFixed(0)} B/tx (+${(median(wal.get(n)!) - baseWal).toFixed(0)}), ${median(tps.get(n)!).toFixed(0)} tps`,
      );
    }
  } finally {
    await Promise.all([ha!.stop(), hb!.stop()]);
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
