/**
 * Scenario 6, multi-master: two sources (one database on each server), both taking
 * single-row UPDATEs of random keys from pgbench (custom script, 2 connections each) for N
 * seconds while the replicator runs with autokick and conflictStrategy 'latest'. When the
 * writers stop, kicks run until a run finds nothing; then both tables are checksummed.
 *
 * "Converged" rows/s = committed writes on both sides / time from the writers' start to
 * both databases holding the same rows. The reference is the write rate itself (writes /
 * writing time): a replicator that keeps up converges at almost that rate.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Replicator } from '../../src/index.js';
import type { RunResult } from '../../src/index.js';
import { requireTools, type Scenario, type ScenarioOutput } from '../lib/context.js';
import { checksum, createDb, type BenchDb } from '../lib/pg.js';
import { pgbenchRun, type PgbenchResult } from '../lib/pgbench.js';
import { figure } from '../lib/report.js';

interface MmRun {
  writes: number;
  writeSeconds: number;
  tpsA: number;
  tpsB: number;
  catchUpS: number;
  convergedS: number;
  runs: number;
  applied: number;
  conflicts: number;
  equal: boolean;
  errors: number;
}

export const multimaster: Scenario = {
  name: 'multimaster',
  title: 'Multi-master: two sources taking writes, autokick, latest wins',
  async run(ctx): Promise<ScenarioOutput> {
    const tools = requireTools(ctx);
    const rows = ctx.quick ? 10_000 : 100_000;
    const seconds = ctx.quick ? 3 : ctx.long ? 20 : 10;
    const clients = 2;
    const a = await createDb(ctx.a, 'mm_a');
    const b = await createDb(ctx.b, 'mm_b');
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pgferry-bench-'));
    const script = path.join(dir, 'update.sql');
    await fs.writeFile(script, `\\set id random(1, ${rows})\nUPDATE mm SET v = v + 1, at = now() WHERE id = :id;\n`);
    try {
      for (const db of [a, b]) {
        await db.sql('CREATE TABLE mm (id int PRIMARY KEY, v bigint NOT NULL, note text NOT NULL, at timestamptz NOT NULL)');
        await db.sql(`INSERT INTO mm SELECT g, 0, md5(g::text), timestamptz '2024-01-01' FROM generate_series(1, $1::int) g`, [rows]);
        await db.sql('VACUUM ANALYZE mm');
      }
      const results: MmRun[] = [];
      for (let r = 0; r < ctx.runs; r++) {
        results.push(await once(a, b, tools, script, seconds, clients));
        const x = results.at(-1)!;
        ctx.log(`multimaster run ${r + 1}/${ctx.runs}: ${x.writes} writes in ${x.writeSeconds.toFixed(1)} s, converged after ${x.convergedS.toFixed(2)} s (catch-up ${x.catchUpS.toFixed(2)} s), ${x.conflicts} conflicts, equal: ${x.equal}`);
      }
      const figures = [
        figure({
          metric: `2 sources x ${clients} writers, ${seconds} s: rows/s converged`,
          unit: 'rows/s',
          runs: results.map((x) => x.writes / x.convergedS),
          reference: { label: 'rows/s written', runs: results.map((x) => x.writes / x.writeSeconds) },
          vs: { kind: 'ratio', runs: results.map((x) => x.writeSeconds / x.convergedS) },
        }),
        figure({
          metric: 'catch-up after writers stop',
          unit: 's',
          runs: results.map((x) => x.catchUpS),
          reference: { label: 'writing time', runs: results.map((x) => x.writeSeconds) },
          vs: { kind: 'share %', runs: results.map((x) => (100 * x.catchUpS) / x.writeSeconds) },
        }),
        figure({
          metric: 'contents equal at the end (checksum)',
          unit: 'runs',
          runs: [results.filter((x) => x.equal).length],
          reference: { label: 'runs', unit: 'runs', runs: [results.length] },
        }),
      ];
      const notes = [
        `Each side: pgbench -n -f (\\set id random(1, ${rows}); UPDATE mm SET v = v + 1, at = now() WHERE id = :id) -c ${clients} -j 1 -T ${seconds} -M prepared; write tps a/b per run: ${results.map((x) => `${x.tpsA.toFixed(0)}/${x.tpsB.toFixed(0)}`).join(', ')}.`,
        `Sync runs during the window: ${results.map((x) => x.runs).join('/')}; rows applied: ${results.map((x) => x.applied).join('/')}; conflicts settled: ${results.map((x) => x.conflicts).join('/')}; run errors: ${results.map((x) => x.errors).join('/')}.`,
      ];
      return { figures, notes, raw: { rows, seconds, clients, results } };
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
      await a.drop().catch(() => undefined);
      await b.drop().catch(() => undefined);
    }
  },
};

async function once(a: BenchDb, b: BenchDb, tools: NonNullable<Parameters<Scenario['run']>[0]['tools']>, script: string, seconds: number, clients: number): Promise<MmRun> {
  const rep = new Replicator();
  let runs = 0;
  let applied = 0;
  let conflicts = 0;
  let errors = 0;
  rep.on('sync:complete', (r: RunResult) => {
    runs++;
    applied += r.totals.upserted + r.totals.deleted;
    conflicts += r.totals.conflicts;
  });
  rep.on('sync:error', () => errors++);
  rep.on('error', () => undefined);
  try {
    await rep.addDatabase('a', a.url);
    await rep.addDatabase('b', b.url);
    await rep.addSync('mm', { tables: ['mm'], databases: { a: 'source', b: 'source' }, conflictStrategy: 'latest', autokick: true });
    await rep.install();
    await rep.kick('mm');
    await Promise.all([a.sql('VACUUM mm'), b.sql('VACUUM mm')]);
    await Promise.all([a.sql('CHECKPOINT'), b.sql('CHECKPOINT')]);
    await rep.start();
    const args = ['-n', '-f', script, '-c', String(clients), '-j', '1', '-T', String(seconds), '-M', 'prepared'];
    const t0 = performance.now();
    const [ra, rb]: PgbenchResult[] = await Promise.all([pgbenchRun(tools, a, args), pgbenchRun(tools, b, args)]);
    const t1 = performance.now();
    let last = await rep.kick('mm');
    for (let i = 0; i < 20 && last.status !== 'empty'; i++) last = await rep.kick('mm');
    const t2 = performance.now();
    await rep.stop();
    const [ca, cb] = await Promise.all([checksum(a, 'mm'), checksum(b, 'mm')]);
    return {
      writes: ra!.transactions + rb!.transactions,
      writeSeconds: (t1 - t0) / 1000,
      tpsA: ra!.tps,
      tpsB: rb!.tps,
      catchUpS: (t2 - t1) / 1000,
      convergedS: (t2 - t0) / 1000,
      runs,
      applied,
      conflicts,
      equal: ca.md5 === cb.md5 && ca.count === cb.count,
      errors,
    };
  } finally {
    await rep.stop().catch(() => undefined);
  }
}
