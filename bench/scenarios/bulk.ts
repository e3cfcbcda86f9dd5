/**
 * Scenario 3, bulk incremental: an UPDATE of every row of a table of N rows on the source,
 * then one `rep.kick()`; the figure is commit-to-commit: from the UPDATE's commit returning to
 * the kick resolving (every target committed). Reference: a raw COPY pipe of the same rows
 * between the same servers (`COPY (SELECT * FROM t) TO STDOUT` piped with pg-copy-streams into
 * `COPY t_ref FROM STDIN` on the target after a TRUNCATE, in one transaction).
 *
 * The process's RSS is sampled every 50 ms during each kick and each reference copy; the
 * memory scenario reports it.
 */
import { Replicator } from '../../src/index.js';
import type { BenchContext, Scenario, ScenarioOutput } from '../lib/context.js';
import { rawCopyPipe } from '../lib/copy.js';
import { checksum, createDb, type BenchDb } from '../lib/pg.js';
import { RssSampler } from '../lib/rss.js';
import { figure, type Figure, type Goal } from '../lib/report.js';

export interface IncrementalRun {
  rows: number;
  /** UPDATE of every row, with capture triggers, in ms. */
  updateMs: number;
  /** Commit of the UPDATE to the kick resolving, in ms. */
  kickMs: number;
  upserted: number;
  refMs: number;
  refRows: number;
  rss: { baselineMb: number; peakMb: number; refPeakMb: number; samples: number; refSamples: number };
  /** Target equal to source (checked after the last run only; true on the others). */
  equal: boolean;
}

export function bulkSizes(ctx: BenchContext): number[] {
  return ctx.quick ? [20_000] : [100_000, 1_000_000];
}

/**
 * Runs per size, and a time budget: in the default mode the 1M case stops after its second run
 * once it has taken more than 100 s (so the suite stays under 10 minutes when pgferry is slow);
 * --long and --runs always do every run.
 */
export function bulkRuns(ctx: BenchContext, n: number): { runs: number; budgetS?: number } {
  return n >= 1_000_000 && !ctx.long && !ctx.runsGiven ? { runs: ctx.runs, budgetS: 100 } : { runs: ctx.runs };
}

export const DDL = (name: string) => `CREATE TABLE ${name} (id int PRIMARY KEY, a int NOT NULL, b text NOT NULL, c timestamptz NOT NULL)`;
export const FILL = (name: string) =>
  `INSERT INTO ${name} SELECT g, g, md5(g::text), timestamptz '2024-01-01' + g * interval '1 second' FROM generate_series(1, $1::int) g`;

export function label(n: number): string {
  return n >= 1_000_000 ? `${n / 1_000_000}M` : n >= 1000 ? `${n / 1000}k` : String(n);
}

/**
 * Measures `runs` incremental replications of `n` changed rows. `hook`, when given, runs at the start
 * and at the end of every run (the native scenario measures built-in replication there, interleaved).
 */
export async function measureIncremental(ctx: BenchContext, n: number, plan: { runs: number; budgetS?: number }, hook?: (run: number, when: 'before' | 'after') => Promise<void>): Promise<IncrementalRun[]> {
  const { runs, budgetS } = plan;
  const src = await createDb(ctx.a, `inc${label(n).toLowerCase()}_src`);
  const tgt = await createDb(ctx.b, `inc${label(n).toLowerCase()}_tgt`);
  const rep = new Replicator();
  const out: IncrementalRun[] = [];
  try {
    ctx.log(`bulk: filling ${n} rows on both servers`);
    for (const db of [src, tgt]) {
      await db.sql(DDL('t'));
      await db.sql(FILL('t'), [n]);
      await db.sql('VACUUM ANALYZE t');
    }
    await tgt.sql(DDL('t_ref'));
    await rep.addDatabase('src', src.url);
    await rep.addDatabase('tgt', tgt.url);
    await rep.addSync('bulk', { tables: ['t'], databases: { src: 'source', tgt: 'target' }, autokick: false });
    await rep.install();
    const started = performance.now();
    for (let r = 0; r < runs; r++) {
      if (budgetS !== undefined && r >= 2 && (performance.now() - started) / 1000 > budgetS) {
        ctx.log(`bulk ${label(n)}: ${r} runs took more than ${budgetS} s; skipping the rest to keep the suite under 10 minutes`);
        break;
      }
      await hook?.(r, 'before');
      await Promise.all([src.sql('VACUUM t'), tgt.sql('VACUUM t'), tgt.sql('TRUNCATE t_ref')]);
      await Promise.all([src.sql('CHECKPOINT'), tgt.sql('CHECKPOINT')]);

      // Reference: raw COPY pipe of the same rows.
      const refRss = new RssSampler(50).start();
      const ref = await rawCopyPipe(src.url, tgt.url, 'SELECT * FROM t', 't_ref');
      const refMem = refRss.stop();
      await Promise.all([src.sql('CHECKPOINT'), tgt.sql('CHECKPOINT')]);

      // pgferry: UPDATE every row, then one kick.
      const t0 = performance.now();
      await src.sql('UPDATE t SET a = a + 1');
      const committed = performance.now();
      const updateMs = committed - t0;
      const rss = new RssSampler(50).start();
      const result = await rep.kick('bulk');
      const kickMs = performance.now() - committed;
      const mem = rss.stop();
      out.push({
        rows: n,
        updateMs,
        kickMs,
        upserted: result.totals.upserted,
        refMs: ref.seconds * 1000,
        refRows: ref.rows,
        rss: { baselineMb: mem.baselineMb, peakMb: mem.peakMb, refPeakMb: refMem.peakMb, samples: mem.samples, refSamples: refMem.samples },
        equal: true,
      });
      ctx.log(`bulk ${label(n)} run ${r + 1}/${runs}: kick ${(kickMs / 1000).toFixed(2)} s (${result.totals.upserted} rows), raw COPY ${ref.seconds.toFixed(2)} s, RSS ${mem.baselineMb.toFixed(0)}→${mem.peakMb.toFixed(0)} MB`);
      await hook?.(r, 'after');
    }
    // The target must equal the source after the last kick (checked once: 1M-row checksums take a while).
    if (out.length) out.at(-1)!.equal = (await checksum(src, 't')).md5 === (await checksum(tgt, 't')).md5;
    return out;
  } finally {
    await rep.stop().catch(() => undefined);
    await src.drop().catch(() => undefined);
    await tgt.drop().catch(() => undefined);
  }
}

function goalFor(n: number): Goal | undefined {
  if (n === 100_000) return { text: '<= 0.6 s', on: 'value', cmp: '<=', target: 0.6, others: 'Bucardo 4.55 s; built-in 0.92 s' };
  if (n === 1_000_000) return { text: '<= 6 s', on: 'value', cmp: '<=', target: 6, others: 'Bucardo 61 s; built-in 8.5 s' };
  return undefined;
}

export function incrementalFigures(all: Map<number, IncrementalRun[]>, defaultRuns: number): Figure[] {
  const figures: Figure[] = [];
  for (const [n, runs] of all) {
    const goal = goalFor(n);
    const nRuns = runs.length !== defaultRuns ? ` [${runs.length} runs]` : '';
    figures.push(figure({
      metric: `${label(n)} changed rows, UPDATE commit → kick resolved${nRuns}`,
      unit: 's',
      runs: runs.map((r) => r.kickMs / 1000),
      reference: { label: 'raw COPY pipe', runs: runs.map((r) => r.refMs / 1000) },
      vs: { kind: 'ratio', runs: runs.map((r) => r.kickMs / r.refMs) },
      ...(goal && { goal }),
    }));
    figures.push(figure({
      metric: `${label(n)} changed rows: apply rate${nRuns}`,
      unit: 'rows/s',
      runs: runs.map((r) => r.upserted / (r.kickMs / 1000)),
      reference: { label: 'raw COPY pipe', runs: runs.map((r) => r.refRows / (r.refMs / 1000)) },
      vs: { kind: 'ratio', runs: runs.map((r) => r.upserted / (r.kickMs / 1000) / (r.refRows / (r.refMs / 1000))) },
      goal: { text: '>= 150k rows/s', on: 'value', cmp: '>=', target: 150_000 },
    }));
  }
  return figures;
}

export const bulk: Scenario = {
  name: 'bulk',
  title: 'Bulk incremental replication (one kick after a whole-table UPDATE)',
  async run(ctx): Promise<ScenarioOutput> {
    const all = new Map<number, IncrementalRun[]>();
    for (const n of bulkSizes(ctx)) all.set(n, await measureIncremental(ctx, n, bulkRuns(ctx, n)));
    ctx.shared.set('bulk', all);
    const notes = [...all].map(([n, runs]) =>
      `${label(n)}: UPDATE of every row with triggers took ${runs.map((r) => (r.updateMs / 1000).toFixed(2)).join('/')} s; ${runs[0]!.upserted} rows upserted per kick; target equal to source after the last run: ${runs.at(-1)!.equal ? 'yes' : 'NO'}.`,
    );
    return { figures: incrementalFigures(all, ctx.runs), notes, raw: Object.fromEntries(all) };
  },
};
