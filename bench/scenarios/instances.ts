/**
 * Scenario 7, instances: the same load replicated by 1 and by 3 started replicators with the
 * same configuration (every replica of a service runs pgferry). pgbench TPC-B at a fixed rate
 * on the source plus single-row commits at 10/s on a latency table; autokick to a target.
 *
 * - rows applied per TPC-B transaction, summed over every instance: with 3 instances it must
 *   stay within 1.1x of one instance (background work is shared, not multiplied);
 * - change-to-visible latency p50/p95 of the single-row commits (commit returned → the
 *   `rows:applied` event of whichever instance applied it): 3 instances within 1.5x of one.
 *
 * The 1- and 3-instance measurements alternate within every run, on the same databases.
 */
import pg from 'pg';
import { Replicator, type RunResult } from '../../src/index.js';
import { requireTools, type BenchContext, type Scenario, type ScenarioOutput } from '../lib/context.js';
import { createDb, type BenchDb } from '../lib/pg.js';
import { pgbenchRun, type ClientTools } from '../lib/pgbench.js';
import { figure } from '../lib/report.js';
import { percentile, sleep } from '../lib/stats.js';
import { tpcbDatabase } from './overhead.js';

const TPCB = ['pgbench_accounts', 'pgbench_tellers', 'pgbench_branches', 'pgbench_history'];

interface Params {
  scale: number;
  seconds: number;
  /** TPC-B transactions per second (pgbench -R). */
  rate: number;
  /** Single-row commits per second on the latency table. */
  probeRate: number;
}

function params(ctx: BenchContext): Params {
  if (ctx.quick) return { scale: 1, seconds: 3, rate: 100, probeRate: 10 };
  return { scale: 10, seconds: ctx.long ? 30 : 15, rate: 300, probeRate: 10 };
}

interface Sample {
  instances: number;
  transactions: number;
  rowsApplied: number;
  runs: number;
  latencies: number[];
  lost: number;
  converged: boolean;
  errors: number;
}

async function replicators(n: number, src: BenchDb, tgt: BenchDb): Promise<Replicator[]> {
  const out: Replicator[] = [];
  for (let i = 0; i < n; i++) {
    const rep = new Replicator({ name: `bench-${i + 1}` });
    await rep.addDatabase('src', src.url);
    await rep.addDatabase('tgt', tgt.url);
    await rep.addSync('tpcb', { tables: TPCB, databases: { src: 'source', tgt: 'target' } });
    await rep.addSync('probe', { tables: ['probe'], databases: { src: 'source', tgt: 'target' } });
    out.push(rep);
  }
  return out;
}

async function sums(db: BenchDb): Promise<string> {
  const r = await db.sql<{ s: string }>(
    `SELECT concat_ws(' ', (SELECT sum(abalance) FROM pgbench_accounts), (SELECT sum(tbalance) FROM pgbench_tellers),
                           (SELECT count(*) FROM pgbench_history), (SELECT count(*) FROM probe)) AS s`,
  );
  return r[0]!.s;
}

async function measure(ctx: BenchContext, tools: ClientTools, p: Params, n: number, src: BenchDb, tgt: BenchDb, probeBase: number): Promise<Sample> {
  const reps = await replicators(n, src, tgt);
  let rowsApplied = 0;
  let runs = 0;
  let errors = 0;
  const committedAt = new Map<number, number>();
  const seenAt = new Map<number, number>();
  for (const rep of reps) {
    rep.on('sync:complete', (r: RunResult) => {
      if (r.sync !== 'tpcb') return;
      runs++;
      rowsApplied += r.totals.upserted + r.totals.deleted;
    });
    rep.on('rows:applied', (e) => {
      if (e.table !== 'public.probe') return;
      const now = performance.now();
      for (const k of e.upserted) if (!seenAt.has(Number(k.id))) seenAt.set(Number(k.id), now);
    });
    rep.on('sync:error', () => errors++);
  }
  try {
    await reps[0]!.kick(); // deliver anything left from setup, not counted
    runs = 0;
    rowsApplied = 0;
    for (const rep of reps) await rep.start();
    const writer = new pg.Client({ connectionString: src.url });
    await writer.connect();
    let writing = true;
    const probe = (async () => {
      let id = probeBase;
      const period = 1000 / p.probeRate;
      while (writing) {
        const t = performance.now();
        await writer.query('INSERT INTO probe (id, v) VALUES ($1, 1)', [id]);
        committedAt.set(id, performance.now());
        id++;
        await sleep(Math.max(0, period - (performance.now() - t)));
      }
    })();
    const bench = await pgbenchRun(tools, src, ['-n', '-c', '4', '-j', '2', '-M', 'prepared', '-R', String(p.rate), '-T', String(p.seconds)]);
    writing = false;
    await probe;
    await writer.end();
    await reps[reps.length - 1]!.kick();
    for (const rep of reps) await rep.stop();
    const [a, b] = await Promise.all([sums(src), sums(tgt)]);
    const latencies = [...committedAt].filter(([id]) => seenAt.has(id)).map(([id, t]) => seenAt.get(id)! - t);
    return { instances: n, transactions: bench.transactions, rowsApplied, runs, latencies, lost: committedAt.size - latencies.length, converged: a === b, errors };
  } finally {
    for (const rep of reps) await rep.stop().catch(() => undefined);
  }
}

export const instances: Scenario = {
  name: 'instances',
  title: 'One replicator vs three with the same configuration (TPC-B + latency probe)',
  async run(ctx): Promise<ScenarioOutput> {
    const tools = requireTools(ctx);
    const p = params(ctx);
    const src = await createDb(ctx.a, 'inst_src');
    const tgt = await createDb(ctx.b, 'inst_tgt');
    try {
      ctx.log(`instances: pgbench -i -s ${p.scale} on two databases`);
      await Promise.all([tpcbDatabase(tools, src, p.scale), tpcbDatabase(tools, tgt, p.scale)]);
      for (const db of [src, tgt]) await db.sql('CREATE TABLE probe (id bigint PRIMARY KEY, v int NOT NULL)');
      const setup = (await replicators(1, src, tgt))[0]!;
      await setup.install();
      await setup.stop();
      const one: Sample[] = [];
      const three: Sample[] = [];
      let probeBase = 1;
      for (let i = 0; i < ctx.runs; i++) {
        for (const n of i % 2 === 0 ? [1, 3] : [3, 1]) {
          const s = await measure(ctx, tools, p, n, src, tgt, probeBase);
          probeBase += 1_000_000;
          (n === 1 ? one : three).push(s);
          ctx.log(`instances run ${i + 1}/${ctx.runs}, ${n} instance(s): ${s.transactions} tx, ${s.rowsApplied} rows in ${s.runs} runs, probe p50 ${percentile(s.latencies, 50).toFixed(1)} ms, converged ${s.converged}`);
        }
      }
      const perTx = (s: Sample) => s.rowsApplied / Math.max(1, s.transactions);
      const p50 = (s: Sample) => percentile(s.latencies, 50);
      const p95 = (s: Sample) => percentile(s.latencies, 95);
      /** A figure of 3 instances against 1, per run; `limit`: the goal on the ratio. */
      const versusOne = (metric: string, unit: string, f: (s: Sample) => number, limit?: number) =>
        figure({
          metric,
          unit,
          runs: three.map(f),
          reference: { label: '1 instance', unit, runs: one.map(f) },
          vs: { kind: 'ratio', runs: three.map((s, i) => f(s) / Math.max(Number.MIN_VALUE, f(one[i]!))) },
          ...(limit !== undefined && { goal: { text: `<= ${limit}x one instance`, on: 'vs' as const, cmp: '<=' as const, target: limit } }),
        });
      const load = `TPC-B -s ${p.scale} at ${p.rate} tx/s for ${p.seconds} s + ${p.probeRate} single-row commits/s`;
      const figures = [
        versusOne(`${load}: rows applied per TPC-B transaction, 3 instances`, 'rows/tx', perTx, 1.1),
        versusOne('latency p50, single-row commit → applied, 3 instances', 'ms', p50, 1.5),
        versusOne('latency p95, single-row commit → applied, 3 instances', 'ms', p95, 1.5),
        versusOne('sync runs during the load (TPC-B sync), 3 instances', 'runs', (s) => Math.max(1, s.runs)),
      ];
      const all = [...one, ...three];
      const notes = [
        `Three Replicators in one process (names bench-1..3), all started, autokick on both syncs; pgbench -n -c 4 -j 2 -M prepared -R ${p.rate}; the probe writer commits one row every ${1000 / p.probeRate} ms and its latency ends at the rows:applied event of whichever instance applied the row.`,
        `Target equal to source after every measurement: ${all.filter((s) => s.converged).length}/${all.length}; probe rows never seen applied: ${all.reduce((a, s) => a + s.lost, 0)}; sync:error events: ${all.reduce((a, s) => a + s.errors, 0)}.`,
      ];
      const strip = (s: Sample) => ({ ...s, latencies: s.latencies.length });
      return { figures, notes, raw: { params: p, one: one.map(strip), three: three.map(strip) } };
    } finally {
      for (const d of [src, tgt]) await d.drop().catch(() => undefined);
    }
  },
};
