/**
 * Scenario 1, overhead: what capture costs the application.
 *
 * - pgbench TPC-B on the source: TPS without triggers (a database that never had them),
 *   with pgferry's triggers installed but no replicator running ("idle"), and with the
 *   replicator running (rep.start(), autokick to a target on the second server). Both source
 *   databases are made the same way (`pgbench -i`, plus a `hid bigserial` primary key on
 *   pgbench_history so that it can be captured too) and vacuumed and checkpointed before
 *   every measurement. With the replicator running: whether it keeps up (the rows and the
 *   time of the final kick after pgbench stops) and whether the target ends up equal.
 * - bulk statements: one 100k-row INSERT ... SELECT and one 100k-row UPDATE, with and
 *   without capture triggers.
 */
import { Replicator } from '../../src/index.js';
import type { RunResult } from '../../src/index.js';
import { requireTools, type BenchContext, type Scenario, type ScenarioOutput } from '../lib/context.js';
import { createDb, type BenchDb } from '../lib/pg.js';
import { pgbenchInit, pgbenchRun, type ClientTools } from '../lib/pgbench.js';
import { figure, overheadPct } from '../lib/report.js';

export const TABLES = ['pgbench_accounts', 'pgbench_tellers', 'pgbench_branches', 'pgbench_history'];

export interface OverheadParams {
  scale: number;
  /** pgbench seconds per phase and run, split into `slices` interleaved slices. */
  seconds: number;
  slices: number;
  clients: number;
  threads: number;
  bulkRows: number;
}

export function overheadParams(ctx: BenchContext): OverheadParams {
  if (ctx.quick) return { scale: 1, seconds: 3, slices: 1, clients: 4, threads: 2, bulkRows: 20_000 };
  // Four interleaved slices per phase and run: with two, drift on a small machine spread the
  // phases wider than the differences between commits (BENCHMARKS.md, 2026-12-01).
  if (ctx.long) return { scale: 10, seconds: 40, slices: 4, clients: 4, threads: 2, bulkRows: 100_000 };
  return { scale: 10, seconds: 20, slices: 4, clients: 4, threads: 2, bulkRows: 100_000 };
}

/** `pgbench -i -s scale` plus a key on pgbench_history (so it can be captured). */
export async function tpcbDatabase(tools: ClientTools, db: BenchDb, scale: number): Promise<void> {
  await pgbenchInit(tools, db, scale);
  await db.sql('ALTER TABLE pgbench_history ADD COLUMN hid bigserial PRIMARY KEY');
}

/** VACUUM ANALYZE of the four pgbench tables, then CHECKPOINT. */
export async function prepare(db: BenchDb): Promise<void> {
  await db.sql(`VACUUM ANALYZE ${TABLES.join(', ')}`);
  await db.sql('CHECKPOINT');
}

/** Counts and sums of the four pgbench tables, to compare a target with its source. */
export async function tpcbSums(db: BenchDb): Promise<string> {
  const r = await db.sql<{ s: string }>(
    `SELECT concat_ws(' ',
       (SELECT count(*) || ':' || sum(abalance) FROM pgbench_accounts),
       (SELECT count(*) || ':' || sum(tbalance) FROM pgbench_tellers),
       (SELECT count(*) || ':' || sum(bbalance) FROM pgbench_branches),
       (SELECT count(*) || ':' || coalesce(sum(delta), 0) || ':' || coalesce(max(hid), 0) FROM pgbench_history)) AS s`,
  );
  return r[0]!.s;
}

export interface RunningPhase {
  tps: number;
  /** pgbench transactions. */
  transactions: number;
  runs: number;
  rowsDuring: number;
  /** From pgbench's end to the final kick's resolve. */
  finalKickMs: number;
  /** Rows applied by runs that finished after pgbench ended (the backlog). */
  backlogRows: number;
  converged: boolean;
}

/**
 * pgbench with the replicator running (autokick), then one final kick. `window`, when given, opens
 * just before pgbench starts and closes when the final kick resolved (for the native scenario's
 * CPU and WAL readings).
 */
export async function runningPhase(ctx: BenchContext, tools: ClientTools, rep: Replicator, src: BenchDb, tgt: BenchDb, args: string[], window?: { open(): Promise<void>; close(): Promise<void> }): Promise<RunningPhase> {
  await rep.kick('tpcb'); // deliver what the idle phase captured (not timed)
  await prepare(src);
  await tgt.sql('CHECKPOINT');
  let runs = 0;
  let rowsDuring = 0;
  let backlogRows = 0;
  let ended = false;
  const errors: unknown[] = [];
  const onComplete = (r: RunResult) => {
    if (r.sync !== 'tpcb') return;
    const rows = r.totals.upserted + r.totals.deleted;
    if (ended) backlogRows += rows;
    else {
      runs++;
      rowsDuring += rows;
    }
  };
  const onError = (e: { error: unknown }) => errors.push(e.error);
  rep.on('sync:complete', onComplete);
  rep.on('sync:error', onError);
  try {
    await rep.start();
    await window?.open();
    const bench = await pgbenchRun(tools, src, args);
    ended = true;
    const t0 = performance.now();
    await rep.kick('tpcb');
    const finalKickMs = performance.now() - t0;
    await window?.close();
    await rep.stop();
    const [a, b] = await Promise.all([tpcbSums(src), tpcbSums(tgt)]);
    if (a !== b) ctx.log(`overhead: target differs after the running phase: source ${a} / target ${b}`);
    if (errors.length) ctx.log(`overhead: ${errors.length} run error(s) while running, first: ${String((errors[0] as Error)?.message ?? errors[0])}`);
    return { tps: bench.tps, transactions: bench.transactions, runs, rowsDuring, finalKickMs, backlogRows, converged: a === b };
  } finally {
    rep.off('sync:complete', onComplete);
    rep.off('sync:error', onError);
    await rep.stop();
  }
}

async function bulkStatements(db: BenchDb, rows: number, install: (() => Promise<void>) | null, uninstall: (() => Promise<void>) | null): Promise<{ insertMs: number; updateMs: number }> {
  if (uninstall) await uninstall();
  await db.sql('DROP TABLE IF EXISTS bulk_stmt');
  await db.sql('CREATE TABLE bulk_stmt (id int PRIMARY KEY, a int NOT NULL, b text NOT NULL, c timestamptz NOT NULL)');
  if (install) await install();
  await db.sql('CHECKPOINT');
  let t0 = performance.now();
  await db.sql(`INSERT INTO bulk_stmt SELECT g, g, md5(g::text), timestamptz '2024-01-01' + g * interval '1 second' FROM generate_series(1, $1::int) g`, [rows]);
  const insertMs = performance.now() - t0;
  await db.sql('VACUUM ANALYZE bulk_stmt');
  await db.sql('CHECKPOINT');
  t0 = performance.now();
  await db.sql('UPDATE bulk_stmt SET a = a + 1');
  const updateMs = performance.now() - t0;
  return { insertMs, updateMs };
}

export const overhead: Scenario = {
  name: 'overhead',
  title: 'Capture overhead (pgbench TPC-B, bulk statements)',
  async run(ctx): Promise<ScenarioOutput> {
    const tools = requireTools(ctx);
    const p = overheadParams(ctx);
    const plain = await createDb(ctx.a, 'ovh_plain');
    const cap = await createDb(ctx.a, 'ovh_cap');
    const tgt = await createDb(ctx.b, 'ovh_tgt');
    const rep = new Replicator();
    try {
      ctx.log(`overhead: pgbench -i -s ${p.scale} on three databases`);
      await Promise.all([tpcbDatabase(tools, plain, p.scale), tpcbDatabase(tools, cap, p.scale), tpcbDatabase(tools, tgt, p.scale)]);
      await tgt.sql('CREATE TABLE bulk_stmt (id int PRIMARY KEY, a int NOT NULL, b text NOT NULL, c timestamptz NOT NULL)');
      await rep.addDatabase('src', cap.url);
      await rep.addDatabase('tgt', tgt.url);
      await rep.addSync('tpcb', { tables: TABLES, databases: { src: 'source', tgt: 'target' }, autokick: true });
      await rep.addSync('bulk', { tables: ['bulk_stmt'], databases: { src: 'source', tgt: 'target' }, autokick: false });
      await rep.addSync('bulk_row', { tables: ['bulk_stmt'], databases: { src: 'source', tgt: 'target' }, autokick: false, capture: 'row' });
      await cap.sql('CREATE TABLE bulk_stmt (id int PRIMARY KEY, a int NOT NULL, b text NOT NULL, c timestamptz NOT NULL)');
      await rep.install('tpcb');

      const sliceSeconds = Math.max(1, Math.round(p.seconds / p.slices));
      const args = ['-n', '-c', String(p.clients), '-j', String(p.threads), '-T', String(sliceSeconds), '-M', 'prepared'];
      const none: number[] = [];
      const idle: number[] = [];
      const running: RunningPhase[] = [];
      type Bulk = { insertMs: number; updateMs: number };
      const bulk: { without: Bulk; with: Bulk; row: Bulk }[] = [];
      const uninstallBulk = async () => {
        await rep.uninstall('bulk');
        await rep.uninstall('bulk_row');
      };
      const phases = ['none', 'idle', 'running'] as const;
      const mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / xs.length;
      for (let i = 0; i < ctx.runs; i++) {
        // Each phase runs in `slices` slices, interleaved with the others in a rotating order,
        // so that drift over time (I/O of other work, bloat, caches) hits every phase alike.
        const tps: Record<(typeof phases)[number], number[]> = { none: [], idle: [], running: [] };
        const slices: RunningPhase[] = [];
        for (let sl = 0; sl < p.slices; sl++) {
          const k = (i * p.slices + sl) % 3;
          for (const phase of [...phases.slice(k), ...phases.slice(0, k)]) {
            if (phase === 'none') {
              await prepare(plain);
              tps.none.push((await pgbenchRun(tools, plain, args)).tps);
            } else if (phase === 'idle') {
              await prepare(cap);
              tps.idle.push((await pgbenchRun(tools, cap, args)).tps);
            } else {
              const r = await runningPhase(ctx, tools, rep, cap, tgt, args);
              slices.push(r);
              tps.running.push(r.tps);
            }
          }
        }
        none.push(mean(tps.none));
        idle.push(mean(tps.idle));
        running.push({
          tps: mean(tps.running),
          transactions: slices.reduce((a, r) => a + r.transactions, 0),
          runs: slices.reduce((a, r) => a + r.runs, 0),
          rowsDuring: slices.reduce((a, r) => a + r.rowsDuring, 0),
          finalKickMs: mean(slices.map((r) => r.finalKickMs)),
          backlogRows: mean(slices.map((r) => r.backlogRows)),
          converged: slices.every((r) => r.converged),
        });
        const without = await bulkStatements(plain, p.bulkRows, null, null);
        const withT = await bulkStatements(cap, p.bulkRows, () => rep.install('bulk'), uninstallBulk);
        const row = await bulkStatements(cap, p.bulkRows, () => rep.install('bulk_row'), uninstallBulk);
        bulk.push({ without, with: withT, row });
        ctx.log(
          `overhead run ${i + 1}/${ctx.runs}: none ${none.at(-1)!.toFixed(0)} idle ${idle.at(-1)!.toFixed(0)} running ${running.at(-1)!.tps.toFixed(0)} tps; ` +
            `UPDATE ${without.updateMs.toFixed(0)} / statement ${withT.updateMs.toFixed(0)} / row ${row.updateMs.toFixed(0)} ms`,
        );
      }
      await uninstallBulk();

      const pg = `TPC-B -s ${p.scale} -c ${p.clients}, ${p.slices > 1 ? `${p.slices}x${sliceSeconds}` : p.seconds} s`;
      const k = p.bulkRows >= 1000 ? `${p.bulkRows / 1000}k` : String(p.bulkRows);
      const figures = [
        figure({ metric: `${pg}: TPS, no triggers`, unit: 'tps', runs: none, note: 'reference for the two rows below' }),
        figure({
          metric: `${pg}: TPS, triggers, replicator idle`,
          unit: 'tps',
          runs: idle,
          reference: { label: 'no triggers', runs: none },
          vs: { kind: 'overhead %', runs: idle.map((x, i) => overheadPct(x, none[i]!)) },
          goal: { text: '<= 8 % overhead', on: 'vs', cmp: '<=', target: 8, others: 'Bucardo 20 %' },
        }),
        figure({
          metric: `${pg}: TPS, replicator running (autokick)`,
          unit: 'tps',
          runs: running.map((r) => r.tps),
          reference: { label: 'no triggers', runs: none },
          vs: { kind: 'overhead %', runs: running.map((r, i) => overheadPct(r.tps, none[i]!)) },
          goal: { text: '<= 20 % overhead', on: 'vs', cmp: '<=', target: 20, others: 'Bucardo 59 %; built-in 23 %' },
        }),
        figure({
          metric: 'running: final kick after pgbench stops (catch-up)',
          unit: 'ms',
          runs: running.map((r) => r.finalKickMs),
          reference: { label: 'mean run during load', unit: 'ms', runs: running.map((r) => (r.runs ? (sliceSeconds * p.slices * 1000) / r.runs : NaN)) },
          vs: { kind: 'ratio', runs: running.map((r) => (r.runs ? r.finalKickMs / ((sliceSeconds * p.slices * 1000) / r.runs) : NaN)) },
          note: 'time from the end of pgbench to the target having everything',
        }),
        figure({
          metric: 'running: backlog rows at pgbench end',
          unit: 'rows',
          runs: running.map((r) => r.backlogRows),
          reference: { label: 'rows applied during load', unit: 'rows', runs: running.map((r) => r.rowsDuring) },
          vs: { kind: 'share %', runs: running.map((r) => (100 * r.backlogRows) / Math.max(1, r.rowsDuring + r.backlogRows)) },
        }),
        ...(['with', 'row'] as const).flatMap((shape) => {
          const label = shape === 'with' ? "capture 'statement' (default)" : "capture 'row'";
          return [
            figure({
              metric: `${k}-row INSERT ... SELECT (one statement), ${label}`,
              unit: 'ms',
              runs: bulk.map((b) => b[shape].insertMs),
              reference: { label: 'without triggers', runs: bulk.map((b) => b.without.insertMs) },
              vs: { kind: 'ratio', runs: bulk.map((b) => b[shape].insertMs / b.without.insertMs) },
            }),
            figure({
              metric: `${k}-row UPDATE (one statement), ${label}`,
              unit: 'ms',
              runs: bulk.map((b) => b[shape].updateMs),
              reference: { label: 'without triggers', runs: bulk.map((b) => b.without.updateMs) },
              vs: { kind: 'ratio', runs: bulk.map((b) => b[shape].updateMs / b.without.updateMs) },
              goal: { text: '<= 1.3x', on: 'vs', cmp: '<=', target: 1.3, others: 'Bucardo 3.0x' },
            }),
          ];
        }),
      ];
      const notConverged = running.filter((r) => !r.converged).length;
      const notes = [
        `${tools.pgbenchVersion} against PostgreSQL ${ctx.a.version}: pgbench -n -c ${p.clients} -j ${p.threads} -M prepared -T ${sliceSeconds}, ${p.slices} slice(s) per phase and run, phases interleaved in rotating order; every slice starts from VACUUM ANALYZE and CHECKPOINT.`,
        `Both source databases got \`ALTER TABLE pgbench_history ADD COLUMN hid bigserial PRIMARY KEY\` after \`pgbench -i\`, so pgbench_history can be captured; "no triggers" runs on a twin database that never had capture installed.`,
        `Running: ${running.map((r) => `${r.runs} sync runs / ${r.rowsDuring} rows during load`).join('; ')}; target equal to source at the end in ${running.length - notConverged}/${running.length} runs.`,
      ];
      return { figures, notes, raw: { params: p, none, idle, running, bulk } };
    } finally {
      await rep.stop().catch(() => undefined);
      for (const d of [plain, cap, tgt]) await d.drop().catch(() => undefined);
    }
  },
};
