/**
 * Scenario 8, native: pgferry side by side with PostgreSQL's built-in logical replication.
 *
 * Starts two pairs of servers of its own, all four with `wal_level = logical` and the suite's
 * durability (fsync, synchronous_commit, full_page_writes on): one pair for pgferry, one for a
 * publication and a subscription on the same tables. Each pair only carries its own system's
 * work, so native's walsender never decodes pgferry's WAL and pgferry never shares a server with
 * a replication slot. Every measurement runs for both systems in the same run, alternating:
 *
 * - pgbench TPC-B (all four tables replicated) while replicating: TPS; CPU of the replication
 *   path per 1000 transactions (pgferry: this process plus its backends on both servers;
 *   native: walsender plus apply workers), from `/proc/<pid>/stat`; WAL written on the source per
 *   1000 transactions (`pg_current_wal_lsn()` before and after); catch-up after pgbench stops.
 *   The pgferry side is the overhead scenario's running phase.
 * - a whole-table UPDATE of 100k and 1M rows: the UPDATE's duration (pgferry: with capture
 *   triggers; native: a plain UPDATE of a published table) and commit → visible on the target
 *   (pgferry: the bulk scenario's commit → kick resolved; native: polling the target for the
 *   value the UPDATE gave to the table's last row, every 2 ms; the subscriber applies the
 *   transaction atomically).
 * - single-row INSERTs at 1 commit/s: commit → visible on the target, both polled the same way
 *   (1 ms between polls), pgferry with autokick.
 */
import pg from 'pg';
import { Replicator } from '../../src/index.js';
import type { RowsAppliedEvent } from '../../src/index.js';
import { startEmbeddedServer, type ServerHandle } from '../../tools/pg-servers.js';
import { requireTools, type BenchContext, type Scenario, type ScenarioOutput } from '../lib/context.js';
import { ownCpuMs, watchBackendCpu, type CpuSource, type CpuWindow } from '../lib/cpu.js';
import { APPLY_WORKERS, LOGICAL_SETTINGS, subscribe, walBytes, walLsn, WALSENDER, type Subscription } from '../lib/logical.js';
import { checksum, createDb, sqlAt, type BenchDb, type BenchServer } from '../lib/pg.js';
import { pgbenchRun, type ClientTools } from '../lib/pgbench.js';
import { figure, type Figure } from '../lib/report.js';
import { percentile, sleep } from '../lib/stats.js';
import { bulkRuns, bulkSizes, DDL, FILL, label, measureIncremental, type IncrementalRun } from './bulk.js';
import { TABLE_DDL } from './latency.js';
import { prepare, runningPhase, TABLES, tpcbDatabase, tpcbSums } from './overhead.js';

/** pgferry's pool and holder connections (pgbench's say 'pgferry-bench', the bench's own none). */
const PGFERRY_BACKENDS = `backend_type = 'client backend' AND (application_name = 'pgferry' OR application_name LIKE 'pgferry:%')`;

interface Pair {
  a: BenchServer;
  b: BenchServer;
}

interface Params {
  scale: number;
  seconds: number;
  clients: number;
  threads: number;
  latency: { label: string; rate: number; seconds: number };
}

function params(ctx: BenchContext): Params {
  if (ctx.quick) return { scale: 1, seconds: 3, clients: 4, threads: 2, latency: { label: '20 commits/s', rate: 20, seconds: 3 } };
  return { scale: 10, seconds: 20, clients: 4, threads: 2, latency: { label: '1 commit/s', rate: 1, seconds: ctx.long ? 60 : 30 } };
}

async function startPairs(ctx: BenchContext, handles: ServerHandle[]): Promise<{ pf: Pair; lr: Pair; settings: string }> {
  const started = await Promise.all([0, 1, 2, 3].map(() => startEmbeddedServer({ fast: false, settings: LOGICAL_SETTINGS })));
  handles.push(...started);
  const servers = await Promise.all(started.map(async (h, i): Promise<BenchServer> => {
    const v = await sqlAt<{ v: string }>(h.url, `SELECT current_setting('server_version') AS v`);
    return { id: i % 2 ? 'b' : 'a', url: h.url, version: v[0]!.v };
  }));
  const s = await sqlAt<{ s: string }>(servers[0]!.url, `SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) AS s FROM pg_settings
     WHERE name IN ('wal_level', 'fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers', 'max_wal_size', 'max_replication_slots', 'max_wal_senders', 'logical_decoding_work_mem')`);
  ctx.log(`native: 4 servers with wal_level=logical started (PostgreSQL ${servers[0]!.version})`);
  return { pf: { a: servers[0]!, b: servers[1]! }, lr: { a: servers[2]!, b: servers[3]! }, settings: s[0]!.s };
}

async function until(what: string, timeoutMs: number, intervalMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`native: ${what} not reached within ${timeoutMs / 1000} s`);
    await sleep(intervalMs);
  }
}

const ratios = (xs: number[], ys: number[]) => xs.map((x, i) => x / ys[i]!);

function sideBySide(metric: string, unit: string, pgferry: number[], native: number[], note?: string): Figure {
  return figure({ metric, unit, runs: pgferry, reference: { label: 'native LR', runs: native }, vs: { kind: 'ratio', runs: ratios(pgferry, native) }, ...(note && { note }) });
}

// ---- TPC-B ------------------------------------------------------------------------------------

interface TpcbSample {
  tps: number;
  transactions: number;
  /** CPU ms of the replication path during pgbench and the catch-up after it. */
  cpuMs: number;
  cpu: CpuWindow;
  /** pgferry: this process's CPU ms (the replicator) within cpuMs. */
  processCpuMs?: number;
  walBytes: number;
  catchUpMs: number;
  converged: boolean;
}

/** CPU and WAL readings from open() to close(). */
function readings(src: BenchDb, cpuSources: CpuSource[], withProcess: boolean) {
  let cpu: { stop(): Promise<CpuWindow> } | null = null;
  let lsn0 = '';
  let own: NodeJS.CpuUsage | null = null;
  let out: { cpu: CpuWindow; processCpuMs?: number; walBytes: number } | null = null;
  return {
    async open() {
      cpu = await watchBackendCpu(cpuSources);
      lsn0 = await walLsn(src);
      if (withProcess) own = process.cpuUsage();
    },
    async close() {
      const processCpuMs = own ? ownCpuMs(own) : undefined;
      const w = await cpu!.stop();
      cpu = null;
      out = { cpu: w, ...(processCpuMs !== undefined && { processCpuMs }), walBytes: await walBytes(src, lsn0, await walLsn(src)) };
    },
    /** Stops sampling if close() was not reached. */
    async abandon() {
      if (cpu) await cpu.stop().catch(() => undefined);
    },
    result() {
      if (!out) throw new Error('native: readings not closed');
      return out;
    },
  };
}

async function pgferryTpcb(ctx: BenchContext, tools: ClientTools, rep: Replicator, src: BenchDb, tgt: BenchDb, args: string[]): Promise<TpcbSample> {
  const w = readings(src, [{ url: src.server.url, where: PGFERRY_BACKENDS, label: 'source' }, { url: tgt.server.url, where: PGFERRY_BACKENDS, label: 'target' }], true);
  try {
    const r = await runningPhase(ctx, tools, rep, src, tgt, args, w);
    const m = w.result();
    return { tps: r.tps, transactions: r.transactions, cpuMs: m.cpu.ms + m.processCpuMs!, cpu: m.cpu, processCpuMs: m.processCpuMs!, walBytes: m.walBytes, catchUpMs: r.finalKickMs, converged: r.converged };
  } finally {
    await w.abandon();
  }
}

async function nativeTpcb(tools: ClientTools, src: BenchDb, tgt: BenchDb, args: string[]): Promise<TpcbSample> {
  await prepare(src);
  await tgt.sql('CHECKPOINT');
  const w = readings(src, [{ url: src.server.url, where: WALSENDER, label: 'source' }, { url: tgt.server.url, where: APPLY_WORKERS, label: 'target' }], false);
  try {
    await w.open();
    const bench = await pgbenchRun(tools, src, args);
    const t0 = performance.now();
    // Every TPC-B transaction inserts one history row and the subscriber applies transactions
    // whole, in commit order: the target has caught up when it has as many history rows.
    const maxHid = async (db: BenchDb) => Number((await db.sql<{ m: string | null }>('SELECT max(hid)::text AS m FROM pgbench_history'))[0]!.m ?? 0);
    const count = async (db: BenchDb) => Number((await db.sql<{ n: string }>('SELECT count(*)::text AS n FROM pgbench_history'))[0]!.n);
    const [wantMax, wantCount] = [await maxHid(src), await count(src)];
    await until('target caught up after pgbench', 300_000, 2, async () => (await maxHid(tgt)) >= wantMax && (await count(tgt)) >= wantCount);
    const catchUpMs = performance.now() - t0;
    await w.close();
    const m = w.result();
    const [a, b] = await Promise.all([tpcbSums(src), tpcbSums(tgt)]);
    return { tps: bench.tps, transactions: bench.transactions, cpuMs: m.cpu.ms, cpu: m.cpu, walBytes: m.walBytes, catchUpMs, converged: a === b };
  } finally {
    await w.abandon();
  }
}

async function tpcb(ctx: BenchContext, p: Params, pf: Pair, lr: Pair): Promise<{ pgferry: TpcbSample[]; native: TpcbSample[]; sub: Subscription['settings'] }> {
  const tools = requireTools(ctx);
  const dbs = await Promise.all([createDb(pf.a, 'nat_pf_src'), createDb(pf.b, 'nat_pf_tgt'), createDb(lr.a, 'nat_lr_src'), createDb(lr.b, 'nat_lr_tgt')]);
  const [pfSrc, pfTgt, lrSrc, lrTgt] = dbs as [BenchDb, BenchDb, BenchDb, BenchDb];
  const rep = new Replicator();
  let sub: Subscription | null = null;
  try {
    ctx.log(`native: pgbench -i -s ${p.scale} on four databases`);
    await Promise.all(dbs.map((db) => tpcbDatabase(tools, db, p.scale)));
    await rep.addDatabase('src', pfSrc.url);
    await rep.addDatabase('tgt', pfTgt.url);
    await rep.addSync('tpcb', { tables: TABLES, databases: { src: 'source', tgt: 'target' }, autokick: true });
    await rep.install('tpcb');
    sub = await subscribe(lrSrc, lrTgt, 'bench_tpcb', TABLES);
    const args = ['-n', '-c', String(p.clients), '-j', String(p.threads), '-T', String(p.seconds), '-M', 'prepared'];
    const pgferry: TpcbSample[] = [];
    const native: TpcbSample[] = [];
    for (let i = 0; i < ctx.runs; i++) {
      for (const side of i % 2 ? ['native', 'pgferry'] : ['pgferry', 'native']) {
        if (side === 'pgferry') pgferry.push(await pgferryTpcb(ctx, tools, rep, pfSrc, pfTgt, args));
        else native.push(await nativeTpcb(tools, lrSrc, lrTgt, args));
      }
      const [f, n] = [pgferry.at(-1)!, native.at(-1)!];
      ctx.log(`native TPC-B run ${i + 1}/${ctx.runs}: pgferry ${f.tps.toFixed(0)} tps, ${(f.cpuMs / (f.transactions / 1000)).toFixed(0)} ms CPU/1000 tx; native ${n.tps.toFixed(0)} tps, ${(n.cpuMs / (n.transactions / 1000)).toFixed(0)} ms CPU/1000 tx`);
    }
    return { pgferry, native, sub: sub.settings };
  } finally {
    await rep.stop().catch(() => undefined);
    await sub?.drop().catch((e: unknown) => ctx.log(`native: dropping subscription failed: ${String(e)}`));
    for (const d of dbs) await d.drop().catch(() => undefined);
  }
}

// ---- bulk UPDATE ------------------------------------------------------------------------------

interface NativeBulkRun {
  updateMs: number;
  visibleMs: number;
}

async function bulk(ctx: BenchContext, pf: Pair, lr: Pair, n: number): Promise<{ pgferry: IncrementalRun[]; native: NativeBulkRun[]; nativeEqual: boolean }> {
  const src = await createDb(lr.a, `nat${label(n).toLowerCase()}_src`);
  const tgt = await createDb(lr.b, `nat${label(n).toLowerCase()}_tgt`);
  const poller = new pg.Client({ connectionString: tgt.url });
  let sub: Subscription | null = null;
  const native: NativeBulkRun[] = [];
  try {
    ctx.log(`native: filling ${n} rows on both servers of the native pair`);
    await Promise.all([src, tgt].map(async (db) => {
      await db.sql(DDL('t'));
      await db.sql(FILL('t'), [n]);
      await db.sql('VACUUM ANALYZE t');
    }));
    sub = await subscribe(src, tgt, 'bench_bulk', ['t']);
    await poller.connect();
    const nativeRun = async (run: number) => {
      await Promise.all([src.sql('VACUUM t'), tgt.sql('VACUUM t')]);
      await Promise.all([src.sql('CHECKPOINT'), tgt.sql('CHECKPOINT')]);
      const t0 = performance.now();
      await src.sql('UPDATE t SET a = a + 1');
      const committed = performance.now();
      // After k UPDATEs every row has a = id + k.
      await until(`the ${label(n)} UPDATE visible on the target`, 600_000, 2, async () =>
        (await poller.query<{ k: number }>('SELECT a - id AS k FROM t WHERE id = $1', [n])).rows[0]?.k === run + 1);
      native.push({ updateMs: committed - t0, visibleMs: performance.now() - committed });
      ctx.log(`native ${label(n)} run ${run + 1}: UPDATE ${(committed - t0).toFixed(0)} ms, visible after ${(native.at(-1)!.visibleMs / 1000).toFixed(2)} s`);
    };
    // Native before pgferry in even runs, after it in odd ones.
    const pgferry = await measureIncremental({ ...ctx, a: pf.a, b: pf.b }, n, bulkRuns(ctx, n), (r, when) =>
      (when === 'before') === (r % 2 === 0) ? nativeRun(r) : Promise.resolve());
    const nativeEqual = (await checksum(src, 't')).md5 === (await checksum(tgt, 't')).md5;
    return { pgferry, native, nativeEqual };
  } finally {
    await poller.end().catch(() => undefined);
    await sub?.drop().catch((e: unknown) => ctx.log(`native: dropping subscription failed: ${String(e)}`));
    await src.drop().catch(() => undefined);
    await tgt.drop().catch(() => undefined);
  }
}

// ---- latency ----------------------------------------------------------------------------------

interface LatencyRun {
  pgferry: number[];
  native: number[];
  /** pgferry, commit → `rows:applied` event (as the latency scenario measures it). */
  pgferryEvent: number[];
  lost: { pgferry: number; native: number };
}

/** Commits one row through `writer`, then polls `poller` (1 ms apart) until the row is there: ms, or null after 10 s. */
async function probe(writer: pg.Pool, poller: pg.Pool, id: number, committedAt: Map<number, number>): Promise<number | null> {
  await writer.query('INSERT INTO lat (id, v, payload) VALUES ($1, $2, $3)', [id, 0, `row ${id}`]);
  const committed = performance.now();
  committedAt.set(id, committed);
  const deadline = committed + 10_000;
  for (;;) {
    if ((await poller.query('SELECT 1 FROM lat WHERE id = $1', [id])).rowCount) return performance.now() - committed;
    if (performance.now() > deadline) return null;
    await sleep(1);
  }
}

async function latency(ctx: BenchContext, p: Params, pf: Pair, lr: Pair): Promise<LatencyRun[]> {
  const dbs = await Promise.all([createDb(pf.a, 'natlat_pf_src'), createDb(pf.b, 'natlat_pf_tgt'), createDb(lr.a, 'natlat_lr_src'), createDb(lr.b, 'natlat_lr_tgt')]);
  const [pfSrc, pfTgt, lrSrc, lrTgt] = dbs as [BenchDb, BenchDb, BenchDb, BenchDb];
  // Pools: probes overlap when a row takes longer than half a period to arrive.
  const pools = dbs.map((d) => new pg.Pool({ connectionString: d.url, max: 4 }));
  const [pfWriter, pfPoller, lrWriter, lrPoller] = pools as [pg.Pool, pg.Pool, pg.Pool, pg.Pool];
  const rep = new Replicator();
  let sub: Subscription | null = null;
  try {
    for (const d of dbs) await d.sql(TABLE_DDL('lat'));
    await rep.addDatabase('src', pfSrc.url);
    await rep.addDatabase('tgt', pfTgt.url);
    await rep.addSync('lat', { tables: ['lat'], databases: { src: 'source', tgt: 'target' }, autokick: true });
    const appliedAt = new Map<number, number>();
    rep.on('rows:applied', (e: RowsAppliedEvent) => {
      const now = performance.now();
      for (const k of e.upserted) appliedAt.set(Number(k.id), now);
    });
    rep.on('error', (e) => ctx.log(`native latency: replicator error: ${e.message}`));
    await rep.install();
    await rep.start();
    sub = await subscribe(lrSrc, lrTgt, 'bench_lat', ['lat']);
    await Promise.all(pools.map(async (c) => (await c.connect()).release()));
    const { rate, seconds } = p.latency;
    const period = 1000 / rate;
    const count = Math.max(1, Math.round(rate * seconds));
    const out: LatencyRun[] = [];
    for (let r = 0; r < ctx.runs; r++) {
      const committedAt = new Map<number, number>();
      const pending: Promise<[side: 'pgferry' | 'native', ms: number | null, id: number]>[] = [];
      await sleep(200);
      const t0 = performance.now();
      for (let i = 0; i < count; i++) {
        const id = r * 1_000_000 + i;
        // Alternate which system writes first, half a period apart.
        const order = (i + r) % 2 ? (['native', 'pgferry'] as const) : (['pgferry', 'native'] as const);
        for (const [k, side] of order.entries()) {
          const wait = t0 + i * period + (k * period) / 2 - performance.now();
          if (wait > 0) await sleep(wait);
          const [w, q] = side === 'pgferry' ? [pfWriter, pfPoller] : [lrWriter, lrPoller];
          pending.push(probe(w, q, id, side === 'pgferry' ? committedAt : new Map()).then((ms) => [side, ms, id]));
        }
      }
      const done = await Promise.all(pending);
      const ms = (side: string) => done.filter((d) => d[0] === side && d[1] !== null).map((d) => d[1]!);
      const ids = done.filter((d) => d[0] === 'pgferry').map((d) => d[2]);
      out.push({
        pgferry: ms('pgferry'),
        native: ms('native'),
        pgferryEvent: ids.filter((id) => appliedAt.has(id)).map((id) => Math.max(0, appliedAt.get(id)! - committedAt.get(id)!)),
        lost: { pgferry: done.filter((d) => d[0] === 'pgferry' && d[1] === null).length, native: done.filter((d) => d[0] === 'native' && d[1] === null).length },
      });
      const s = out.at(-1)!;
      ctx.log(`native latency run ${r + 1}/${ctx.runs}: pgferry p50 ${percentile(s.pgferry, 50).toFixed(1)} ms, native p50 ${percentile(s.native, 50).toFixed(1)} ms`);
    }
    return out;
  } finally {
    await rep.stop().catch(() => undefined);
    await Promise.all(pools.map((c) => c.end().catch(() => undefined)));
    await sub?.drop().catch((e: unknown) => ctx.log(`native: dropping subscription failed: ${String(e)}`));
    for (const d of dbs) await d.drop().catch(() => undefined);
  }
}

// ---- the scenario -----------------------------------------------------------------------------

const perK = (x: number, transactions: number) => x / (transactions / 1000);

export const native: Scenario = {
  name: 'native',
  title: 'pgferry beside built-in logical replication (same run, wal_level=logical on both pairs)',
  async run(ctx): Promise<ScenarioOutput> {
    const p = params(ctx);
    const handles: ServerHandle[] = [];
    try {
      const { pf, lr, settings } = await startPairs(ctx, handles);
      const t = await tpcb(ctx, p, pf, lr);
      const bulks = new Map<number, Awaited<ReturnType<typeof bulk>>>();
      for (const n of bulkSizes(ctx)) bulks.set(n, await bulk(ctx, pf, lr, n));
      const lat = await latency(ctx, p, pf, lr);

      const pgb = `TPC-B -s ${p.scale} -c ${p.clients}, ${p.seconds} s`;
      const figures: Figure[] = [
        sideBySide(`${pgb}: TPS while replicating (4 tables)`, 'tps', t.pgferry.map((s) => s.tps), t.native.map((s) => s.tps)),
        sideBySide('TPC-B: replication CPU per 1000 transactions', 'ms', t.pgferry.map((s) => perK(s.cpuMs, s.transactions)), t.native.map((s) => perK(s.cpuMs, s.transactions)),
          'CPU ms; pgferry: this process + its backends on both servers; native: walsender + apply workers'),
        sideBySide('TPC-B: source WAL per 1000 transactions', 'kB', t.pgferry.map((s) => perK(s.walBytes / 1024, s.transactions)), t.native.map((s) => perK(s.walBytes / 1024, s.transactions))),
        sideBySide('TPC-B: catch-up after pgbench stops', 'ms', t.pgferry.map((s) => s.catchUpMs), t.native.map((s) => s.catchUpMs),
          'pgferry: final kick; native: until the target has every history row'),
      ];
      for (const [n, b] of bulks) {
        const k = label(n);
        figures.push(
          sideBySide(`${k}-row UPDATE on the source (pgferry: capture triggers; native: published table)`, 'ms', b.pgferry.map((r) => r.updateMs), b.native.map((r) => r.updateMs)),
          sideBySide(`${k}-row UPDATE, commit → visible on the target`, 's', b.pgferry.map((r) => r.kickMs / 1000), b.native.map((r) => r.visibleMs / 1000),
            'pgferry: commit → kick resolved; native: commit → new value polled on the target'),
        );
      }
      for (const [q, name] of [[50, 'p50'], [95, 'p95']] as const) {
        figures.push(sideBySide(`${p.latency.label}: commit → visible ${name} (both polled)`, 'ms', lat.map((s) => percentile(s.pgferry, q)), lat.map((s) => percentile(s.native, q))));
      }

      const pooled = (samples: TpcbSample[]) => {
        const by: Record<string, number> = {};
        for (const s of samples) for (const [type, ms] of Object.entries(s.cpu.byType)) by[type] = (by[type] ?? 0) + ms;
        const tx = samples.reduce((a, s) => a + s.transactions, 0);
        return Object.entries(by).map(([type, ms]) => `${type} ${perK(ms, tx).toFixed(0)}`).join(', ');
      };
      const pfTx = t.pgferry.reduce((a, s) => a + s.transactions, 0);
      const notes = [
        `Four servers of this scenario's own, PostgreSQL ${pf.a.version}, all with ${settings}; pgferry on one pair, native on the other; each measurement alternates which system goes first.`,
        `Native subscription: copy_data = false (both sides filled alike), streaming = ${t.sub.streaming}, synchronous_commit = ${t.sub.synchronousCommit} (the subscription's default: the apply worker does not wait for its commits to reach disk; pgferry's target commits do).`,
        `TPC-B: pgbench -n -c ${p.clients} -j ${p.threads} -M prepared -T ${p.seconds}, each phase after VACUUM ANALYZE and CHECKPOINT; CPU and WAL from pgbench's start to the target having everything. CPU ms per 1000 tx by process: pgferry: Node process ${perK(t.pgferry.reduce((a, s) => a + s.processCpuMs!, 0), pfTx).toFixed(0)}, ${pooled(t.pgferry)}; native: ${pooled(t.native)}. Target equal to source: pgferry ${t.pgferry.filter((s) => s.converged).length}/${t.pgferry.length}, native ${t.native.filter((s) => s.converged).length}/${t.native.length}. Capture triggers run in pgbench's backends and show in the TPS, not in the CPU row. WAL per transaction includes the full-page images written after each phase's CHECKPOINT, so the system with the lower TPS writes more WAL per transaction for that reason alone.`,
        ...[...bulks].map(([n, b]) => `${label(n)}: pgferry ${b.pgferry.length} run(s), ${b.pgferry[0]?.upserted} rows upserted per kick, target equal: ${b.pgferry.at(-1)?.equal ? 'yes' : 'NO'}; native target equal after the last run: ${b.nativeEqual ? 'yes' : 'NO'}.`),
        `${p.latency.label}: single-row INSERTs for ${p.latency.seconds} s per run, both systems half a period apart; the target is polled for the row with 1 ms between polls (both the same way); lost (not seen in 10 s): pgferry ${lat.reduce((a, s) => a + s.lost.pgferry, 0)}, native ${lat.reduce((a, s) => a + s.lost.native, 0)}. pgferry measured by its rows:applied event instead, as the latency scenario does: p50/p95 ${[50, 95].map((q) => percentile(lat.flatMap((s) => s.pgferryEvent), q).toFixed(1)).join('/')} ms pooled.`,
      ];
      return { figures, notes, raw: { params: p, settings, tpcb: t, bulk: Object.fromEntries(bulks), latency: lat } };
    } finally {
      await Promise.all(handles.map((h) => h.stop().catch(() => undefined)));
    }
  },
};
