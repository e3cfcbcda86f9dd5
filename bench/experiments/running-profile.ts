/**
 * What the replicator sends while it keeps up with TPC-B: pgbench (scale 10, -c 4 -j 2, 10 s,
 * durable commits) on the source with the replicator started (autokick to a target), every
 * query pgferry sends timed; prints runs, rows per run, and the queries by total time.
 *
 *   npx tsx bench/experiments/running-profile.ts [--seconds=10]
 */
import pg from 'pg';
import { Replicator } from '../../src/index.js';
import type { RunResult } from '../../src/index.js';
import { createDb, withEmbeddedPair } from '../lib/pg.js';
import { findClientTools, pgbenchRun } from '../lib/pgbench.js';
import { TABLES, prepare, tpcbDatabase } from '../scenarios/overhead.js';

const log = new Map<string, { n: number; ms: number }>();
let recording = false;
const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown; emit: (...args: unknown[]) => boolean };
let heard = 0;
const emit = proto.emit;
proto.emit = function (this: pg.Client, ...args: unknown[]) {
  if (args[0] === 'notification' && recording) heard++;
  return emit.apply(this, args);
};
const original = proto.query;
proto.query = function (this: pg.Client, ...args: unknown[]) {
  const first = args[0] as { text?: string; on?: unknown } | string;
  const text = (typeof first === 'string' ? first : first?.text ?? '?').replace(/\s+/g, ' ').replace(/pgferry_[sk]_\d+/g, 'pgferry_x_N').replace(/"pgbench_\w+"/g, '"pgbench_*"').replace(/delta_\w+/g, 'delta_*').slice(0, 100);
  const t0 = performance.now();
  const res = original.apply(this, args);
  if (!recording) return res;
  const done = () => {
    const e = log.get(text) ?? { n: 0, ms: 0 };
    e.n++;
    e.ms += performance.now() - t0;
    log.set(text, e);
  };
  if (res && typeof (res as Promise<unknown>).then === 'function') (res as Promise<unknown>).then(done, done);
  else if (first && typeof first === 'object' && typeof (first as { on?: unknown }).on === 'function') {
    const s = first as unknown as NodeJS.EventEmitter;
    s.once('finish', done);
    s.once('end', done);
    s.once('error', done);
  }
  return res;
};

async function main(): Promise<void> {
  const seconds = Number(process.argv.find((a) => a.startsWith('--seconds='))?.slice(10) ?? 10);
  const tools = await findClientTools();
  if (!tools) throw new Error('pgbench not found');
  await withEmbeddedPair(false, async (a, b) => {
    const src = await createDb(a, 'rp_src');
    const tgt = await createDb(b, 'rp_tgt');
    await tpcbDatabase(tools, src, 10);
    await tpcbDatabase(tools, tgt, 10);
    const rep = new Replicator();
    await rep.addDatabase('src', src.url);
    await rep.addDatabase('tgt', tgt.url);
    await rep.addSync('tpcb', { tables: TABLES, databases: { src: 'source', tgt: 'target' }, autokick: true });
    await rep.install();
    await prepare(src);
    const runs: RunResult[] = [];
    rep.on('sync:complete', (r) => runs.push(r));
    await rep.start();
    recording = true;
    const t0 = performance.now();
    const bench = await pgbenchRun(tools, src, ['-n', '-c', '4', '-j', '2', '-T', String(seconds), '-M', 'prepared']);
    recording = false;
    const wall = performance.now() - t0;
    await rep.kick('tpcb');
    await rep.stop();
    const rows = runs.reduce((s, r) => s + r.totals.upserted + r.totals.deleted, 0);
    const busy = runs.reduce((s, r) => s + r.durationMs, 0);
    console.log(`TPC-B ${bench.tps.toFixed(0)} tps for ${seconds} s; ${runs.length} runs (${(runs.length / (wall / 1000)).toFixed(1)}/s), ${(rows / Math.max(1, runs.length)).toFixed(0)} rows per run, runs busy ${((100 * busy) / wall).toFixed(0)} % of the time, median run ${runs.map((r) => r.durationMs).sort((x, y) => x - y)[Math.floor(runs.length / 2)]} ms, ${heard} notifications heard`);
    const total = [...log.values()].reduce((s, e) => s + e.ms, 0);
    console.log(`${[...log.values()].reduce((s, e) => s + e.n, 0)} queries, ${total.toFixed(0)} ms in queries`);
    for (const [k, v] of [...log].sort((x, y) => y[1].ms - x[1].ms).slice(0, 25)) console.log(`${v.ms.toFixed(0).padStart(7)} ms ${String(v.n).padStart(6)}x  ${k}`);
    await src.drop();
    await tgt.drop();
  });
}

void main();
