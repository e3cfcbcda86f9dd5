/**
 * Scenario 2, latency: autokick on (rep.start()), single-row commits at a fixed rate on the
 * source; change-to-visible is the time from the writer's COMMIT returning to the replicator's
 * `rows:applied` event for that key (emitted after the target committed).
 *
 * Reference, in the same run and interleaved with it (half a period apart): the smallest
 * trigger-based pipeline one could write by hand: an AFTER INSERT row trigger that NOTIFYs
 * the new id, a listener in this process that reads the row from the source and inserts it on
 * the target (autocommit). Its latency is the floor for any LISTEN/NOTIFY replicator here.
 *
 * The loaded mode runs pgbench TPC-B at a fixed rate beside the writer, in the same source
 * database, replicated to the target by a second autokick sync of the same replicator.
 */
import pg from 'pg';
import { Replicator } from '../../src/index.js';
import type { RowsAppliedEvent } from '../../src/index.js';
import { requireTools, type BenchContext, type Scenario, type ScenarioOutput } from '../lib/context.js';
import { createDb, type BenchDb } from '../lib/pg.js';
import { pgbenchRun } from '../lib/pgbench.js';
import { figure, type Figure, type Goal } from '../lib/report.js';
import { percentile, sleep } from '../lib/stats.js';
import { tpcbDatabase } from './overhead.js';

interface Mode {
  label: string;
  rate: number;
  seconds: number;
  /** TPC-B transactions per second run beside the writer (0: none). */
  loadTps: number;
  goals?: { p50: number; p95: number; others?: string };
}

export function latencyModes(ctx: BenchContext): Mode[] {
  if (ctx.quick) return [{ label: '20 commits/s', rate: 20, seconds: 3, loadTps: 0 }];
  return [
    { label: '1 commit/s', rate: 1, seconds: ctx.long ? 60 : 30, loadTps: 0, goals: { p50: 5, p95: 20, others: 'Bucardo 425/707 ms; built-in 0.8/1.6 ms' } },
    { label: '10 commits/s + 100 TPC-B tps', rate: 10, seconds: ctx.long ? 30 : 10, loadTps: 100, goals: { p50: 8, p95: 30 } },
  ];
}

interface Sample {
  /** Latencies in ms of every row seen on the target. */
  pgferry: number[];
  reference: number[];
  lost: number;
  lostRef: number;
  runs: number;
  loadTps?: number;
}

export const TABLE_DDL = (name: string) => `CREATE TABLE ${name} (id bigint PRIMARY KEY, v int NOT NULL, payload text NOT NULL, at timestamptz NOT NULL DEFAULT now())`;

async function setup(src: BenchDb, tgt: BenchDb): Promise<void> {
  for (const db of [src, tgt]) {
    await db.sql(TABLE_DDL('lat'));
    await db.sql(TABLE_DDL('lat_ref'));
  }
  await src.sql(`CREATE FUNCTION bench_ref_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_notify('bench_ref', NEW.id::text); RETURN NULL; END $$`);
  await src.sql(`CREATE TRIGGER bench_ref AFTER INSERT ON lat_ref FOR EACH ROW EXECUTE FUNCTION bench_ref_notify()`);
}

/** The hand-written reference: NOTIFY → SELECT on the source → INSERT on the target. */
async function startReference(src: BenchDb, tgt: BenchDb, seen: Map<number, number>): Promise<() => Promise<void>> {
  const listen = new pg.Client({ connectionString: src.url });
  const read = new pg.Client({ connectionString: src.url });
  const write = new pg.Client({ connectionString: tgt.url });
  await Promise.all([listen.connect(), read.connect(), write.connect()]);
  const queue: number[] = [];
  let busy = false;
  let stopped = false;
  const pump = async () => {
    if (busy) return;
    busy = true;
    try {
      while (queue.length && !stopped) {
        const id = queue.shift()!;
        const r = await read.query('SELECT id, v, payload, at FROM lat_ref WHERE id = $1', [id]);
        const row = r.rows[0];
        if (row) {
          await write.query('INSERT INTO lat_ref (id, v, payload, at) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v, payload = EXCLUDED.payload, at = EXCLUDED.at', [row.id, row.v, row.payload, row.at]);
        }
        seen.set(id, performance.now());
      }
    } finally {
      busy = false;
    }
  };
  listen.on('notification', (n) => {
    queue.push(Number(n.payload));
    void pump();
  });
  await listen.query('LISTEN bench_ref');
  return async () => {
    stopped = true;
    await Promise.all([listen.end(), read.end(), write.end()].map((p) => p.catch(() => undefined)));
  };
}

async function measure(ctx: BenchContext, mode: Mode, src: BenchDb, tgt: BenchDb, run: number): Promise<Sample> {
  const rep = new Replicator();
  await rep.addDatabase('src', src.url);
  await rep.addDatabase('tgt', tgt.url);
  await rep.addSync('lat', { tables: ['lat'], databases: { src: 'source', tgt: 'target' }, autokick: true });
  if (mode.loadTps > 0) {
    await rep.addSync('tpcb', {
      tables: ['pgbench_accounts', 'pgbench_tellers', 'pgbench_branches', 'pgbench_history'],
      databases: { src: 'source', tgt: 'target' },
      autokick: true,
    });
  }
  const seen = new Map<number, number>();
  const seenRef = new Map<number, number>();
  const committed = new Map<number, number>();
  const committedRef = new Map<number, number>();
  let runs = 0;
  rep.on('rows:applied', (e: RowsAppliedEvent) => {
    if (e.sync !== 'lat') return;
    const now = performance.now();
    for (const k of e.upserted) seen.set(Number(k.id), now);
  });
  rep.on('sync:complete', (r) => {
    if (r.sync === 'lat') runs++;
  });
  rep.on('error', (e) => ctx.log(`latency: replicator error: ${e.message}`));
  const writer = new pg.Client({ connectionString: src.url });
  const writerRef = new pg.Client({ connectionString: src.url });
  await Promise.all([writer.connect(), writerRef.connect()]);
  const base = run * 1_000_000;
  let stopRef: (() => Promise<void>) | null = null;
  let load: Promise<unknown> | null = null;
  try {
    await rep.install();
    await rep.start();
    stopRef = await startReference(src, tgt, seenRef);
    if (mode.loadTps > 0) {
      const tools = requireTools(ctx);
      load = pgbenchRun(tools, src, ['-n', '-c', '2', '-j', '1', '-R', String(mode.loadTps), '-T', String(mode.seconds + 2), '-M', 'prepared']);
      await sleep(1000); // let the load settle
    }
    await sleep(200);
    const period = 1000 / mode.rate;
    const n = Math.max(1, Math.round(mode.rate * mode.seconds));
    const t0 = performance.now();
    const pending: Promise<unknown>[] = [];
    for (let i = 0; i < n; i++) {
      const id = base + i;
      const at = t0 + i * period;
      const wait = at - performance.now();
      if (wait > 0) await sleep(wait);
      pending.push(
        writer.query('INSERT INTO lat (id, v, payload) VALUES ($1, $2, $3)', [id, i, `row ${id}`]).then(() => {
          committed.set(id, performance.now());
        }),
      );
      const wait2 = at + period / 2 - performance.now();
      if (wait2 > 0) await sleep(wait2);
      pending.push(
        writerRef.query('INSERT INTO lat_ref (id, v, payload) VALUES ($1, $2, $3)', [id, i, `row ${id}`]).then(() => {
          committedRef.set(id, performance.now());
        }),
      );
    }
    await Promise.all(pending);
    const deadline = performance.now() + 10_000;
    while ((seen.size < committed.size || seenRef.size < committedRef.size) && performance.now() < deadline) await sleep(20);
    const loadResult = load ? ((await load) as { tps: number }) : null;
    load = null;
    const lat = (c: Map<number, number>, s: Map<number, number>) =>
      [...c].filter(([id]) => s.has(id)).map(([id, t]) => Math.max(0, s.get(id)! - t));
    return {
      pgferry: lat(committed, seen),
      reference: lat(committedRef, seenRef),
      lost: [...committed.keys()].filter((id) => !seen.has(id)).length,
      lostRef: [...committedRef.keys()].filter((id) => !seenRef.has(id)).length,
      runs,
      ...(loadResult && { loadTps: loadResult.tps }),
    };
  } finally {
    if (load) await load.catch(() => undefined);
    if (stopRef) await stopRef();
    await writer.end().catch(() => undefined);
    await writerRef.end().catch(() => undefined);
    await rep.stop();
  }
}

export const latency: Scenario = {
  name: 'latency',
  title: 'Change-to-visible latency with autokick',
  async run(ctx): Promise<ScenarioOutput> {
    const modes = latencyModes(ctx);
    const src = await createDb(ctx.a, 'lat_src');
    const tgt = await createDb(ctx.b, 'lat_tgt');
    try {
      await setup(src, tgt);
      if (modes.some((m) => m.loadTps > 0)) {
        const tools = requireTools(ctx);
        await Promise.all([tpcbDatabase(tools, src, 1), tpcbDatabase(tools, tgt, 1)]);
      }
      const figures: Figure[] = [];
      const notes: string[] = [];
      const raw: Record<string, Sample[]> = {};
      for (const mode of modes) {
        const samples: Sample[] = [];
        for (let r = 0; r < ctx.runs; r++) {
          const idBase = modes.indexOf(mode) * 100 + r;
          samples.push(await measure(ctx, mode, src, tgt, idBase));
          const s = samples.at(-1)!;
          ctx.log(`latency ${mode.label} run ${r + 1}/${ctx.runs}: p50 ${percentile(s.pgferry, 50).toFixed(1)} ms p95 ${percentile(s.pgferry, 95).toFixed(1)} ms (reference p50 ${percentile(s.reference, 50).toFixed(1)} ms), ${s.lost} lost`);
        }
        raw[mode.label] = samples;
        for (const [p, name] of [[50, 'p50'], [95, 'p95'], [99, 'p99'], [100, 'max']] as const) {
          const ours = samples.map((s) => percentile(s.pgferry, p));
          const ref = samples.map((s) => percentile(s.reference, p));
          const target = name === 'p50' ? mode.goals?.p50 : name === 'p95' ? mode.goals?.p95 : undefined;
          const goal: Goal | undefined = target !== undefined
            ? { text: `<= ${target} ms`, on: 'value', cmp: '<=', target, ...(mode.goals?.others && { others: mode.goals.others }) }
            : undefined;
          figures.push(figure({
            metric: `${mode.label}: latency ${name}`,
            unit: 'ms',
            runs: ours,
            reference: { label: 'NOTIFY→SELECT→INSERT by hand', runs: ref },
            vs: { kind: 'ratio', runs: ours.map((x, i) => x / ref[i]!) },
            ...(goal && { goal }),
          }));
        }
        const lost = samples.reduce((a, s) => a + s.lost, 0);
        const count = samples.reduce((a, s) => a + s.pgferry.length, 0);
        const runsPerRow = samples.reduce((a, s) => a + s.runs, 0) / Math.max(1, count);
        notes.push(`${mode.label}: ${count} rows over ${samples.length} run(s) of ${mode.seconds} s, ${lost} not seen within 10 s; ${runsPerRow.toFixed(2)} sync runs per row` +
          (mode.loadTps ? `; TPC-B beside at ${samples.map((s) => s.loadTps?.toFixed(0)).join('/')} tps (pgbench -R ${mode.loadTps}, replicated by a second autokick sync)` : '') +
          `; pooled p50/p95/p99: ${[50, 95, 99].map((p) => percentile(samples.flatMap((s) => s.pgferry), p).toFixed(1)).join('/')} ms.`);
      }
      return { figures, notes, raw: { modes, samples: raw } };
    } finally {
      await src.drop().catch(() => undefined);
      await tgt.drop().catch(() => undefined);
    }
  },
};
