/**
 * Where the time from a commit to its row on the target goes, with autokick: single-row
 * commits on the source, one every 300 ms; for each, the offsets (ms after the writer's
 * COMMIT returned) at which the listener got the notification, each query pgferry sent
 * started and ended, and rows:applied fired. Prints the median of each step over the commits.
 *
 *   npx tsx bench/experiments/latency-trace.ts [--commits=40]
 */
import pg from 'pg';
import { Replicator } from '../../src/index.js';
import { createDb, withEmbeddedPair } from '../lib/pg.js';

interface Mark {
  what: string;
  at: number;
}
let marks: Mark[] = [];
let t0 = 0;
const mark = (what: string) => marks.push({ what, at: performance.now() - t0 });

const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown; emit: (...args: unknown[]) => boolean };
const query = proto.query;
proto.query = function (this: pg.Client, ...args: unknown[]) {
  const first = args[0] as { text?: string } | string;
  const text = (typeof first === 'string' ? first : first?.text ?? '?').replace(/\s+/g, ' ').slice(0, 60);
  mark(`> ${text}`);
  const res = query.apply(this, args);
  if (res && typeof (res as Promise<unknown>).then === 'function') (res as Promise<unknown>).then(() => mark(`< ${text}`), () => mark(`< ${text}`));
  return res;
};
const emit = proto.emit;
proto.emit = function (this: pg.Client, ...args: unknown[]) {
  if (args[0] === 'notification') mark('notification');
  return emit.apply(this, args);
};

async function main(): Promise<void> {
  const commits = Number(process.argv.find((a) => a.startsWith('--commits='))?.slice(10) ?? 40);
  await withEmbeddedPair(false, async (a, b) => {
    const src = await createDb(a, 'trace_src');
    const tgt = await createDb(b, 'trace_tgt');
    for (const db of [src, tgt]) await db.sql('CREATE TABLE lat (id bigint PRIMARY KEY, v int NOT NULL)');
    const rep = new Replicator();
    await rep.addDatabase('src', src.url);
    await rep.addDatabase('tgt', tgt.url);
    await rep.addSync('lat', { tables: ['lat'], databases: { src: 'source', tgt: 'target' }, autokick: true });
    await rep.install();
    let applied: (() => void) | null = null;
    rep.on('rows:applied', () => {
      mark('rows:applied');
      applied?.();
    });
    await rep.start();
    const writer = new pg.Client({ connectionString: src.url });
    await writer.connect();
    const traces: Mark[][] = [];
    for (let i = 0; i < commits; i++) {
      await new Promise((r) => setTimeout(r, 300));
      const seen = new Promise<void>((r) => (applied = r));
      marks = [];
      await query.call(writer, `INSERT INTO lat VALUES (${i}, ${i})`);
      t0 = performance.now();
      marks = [];
      await seen;
      await new Promise((r) => setTimeout(r, 50)); // the run's tail (watermark, unlock)
      if (i >= 8) traces.push(marks); // after the plans went generic
    }
    await writer.end();
    await rep.stop();
    // Each step by name and occurrence: the median of its offsets over the commits.
    const steps = new Map<string, number[]>();
    for (const t of traces) {
      const seenHere = new Map<string, number>();
      for (const m of t) {
        const k = (seenHere.get(m.what) ?? 0) + 1;
        seenHere.set(m.what, k);
        const key = k > 1 ? `${m.what} #${k}` : m.what;
        steps.set(key, [...(steps.get(key) ?? []), m.at]);
      }
    }
    const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
    const rows = [...steps].sort((x, y) => median(x[1]) - median(y[1])).map(([what, ats]) => `${median(ats).toFixed(2).padStart(7)} ms  (${ats.length})  ${what}`);
    console.log(rows.join('\n'));
    await src.drop();
    await tgt.drop();
  });
}

void main();
