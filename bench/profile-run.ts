/**
 * Where does one run spend its time? Times every query pgferry sends during kicks of a
 * one-row change and of an N-row change (default 100k), on two fresh embedded servers with
 * durable settings, and prints the queries by total time.
 *
 *   npx tsx bench/profile-run.ts [--rows=100000] [--big=1] [--fast] [--chunk=N]
 *
 * --big=N does N whole-table kicks (VACUUM and CHECKPOINT before each, as the bulk scenario).
 */
import pg from 'pg';
import { Replicator } from '../src/index.js';
import { createDb, withEmbeddedPair } from './lib/pg.js';

interface Timed {
  text: string;
  ms: number;
}

const log: Timed[] = [];
let recording = false;

// Wrap Client#query: promises and COPY streams (Submittables) alike.
const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
const original = proto.query;
proto.query = function (this: pg.Client, ...args: unknown[]) {
  const first = args[0] as { text?: string; on?: unknown } | string;
  const text = typeof first === 'string' ? first : first?.text ?? '?';
  const t0 = performance.now();
  const res = original.apply(this, args);
  if (!recording) return res;
  const done = () => log.push({ text: text.replace(/\s+/g, ' ').slice(0, 110), ms: performance.now() - t0 });
  if (res && typeof (res as Promise<unknown>).then === 'function') {
    (res as Promise<unknown>).then(done, done);
  } else if (first && typeof first === 'object' && typeof (first as { on?: unknown }).on === 'function') {
    const s = first as unknown as NodeJS.EventEmitter;
    s.once('finish', done);
    s.once('end', done);
    s.once('error', done);
  }
  return res;
};

function report(title: string, totalMs: number): void {
  const by = new Map<string, { n: number; ms: number }>();
  for (const q of log) {
    const k = q.text.replace(/pgferry_[sk]_\d+/g, 'pgferry_x_N').replace(/'[0-9a-f-]{36}'/g, "'<uuid>'");
    const e = by.get(k) ?? { n: 0, ms: 0 };
    e.n++;
    e.ms += q.ms;
    by.set(k, e);
  }
  const sum = log.reduce((a, q) => a + q.ms, 0);
  console.log(`\n## ${title}: ${totalMs.toFixed(1)} ms wall, ${log.length} queries, ${sum.toFixed(1)} ms in queries`);
  for (const [k, v] of [...by].sort((x, y) => y[1].ms - x[1].ms).slice(0, 25)) {
    console.log(`${v.ms.toFixed(2).padStart(9)} ms ${String(v.n).padStart(3)}x  ${k}`);
  }
  log.length = 0;
}

async function main(): Promise<void> {
  const rows = Number(process.argv.find((a) => a.startsWith('--rows='))?.slice(7) ?? 100_000);
  const fast = process.argv.includes('--fast');
  const big = Number(process.argv.find((a) => a.startsWith('--big='))?.slice(6) ?? 1);
  await withEmbeddedPair(fast, async (a, b) => {
    const src = await createDb(a, 'prof_src');
    const tgt = await createDb(b, 'prof_tgt');
    for (const db of [src, tgt]) {
      await db.sql('CREATE TABLE t (id int PRIMARY KEY, a int NOT NULL, b text NOT NULL, c timestamptz NOT NULL)');
      await db.sql(`INSERT INTO t SELECT g, g, md5(g::text), now() FROM generate_series(1, $1::int) g`, [rows]);
    }
    const rep = new Replicator();
    await rep.addDatabase('src', src.url);
    await rep.addDatabase('tgt', tgt.url);
    const chunk = process.argv.find((a) => a.startsWith('--chunk='))?.slice(8);
    await rep.addSync('p', { tables: ['t'], databases: { src: 'source', tgt: 'target' }, autokick: false, ...(chunk && { chunkSize: Number(chunk) }) });
    await rep.install();
    await rep.kick('p'); // warm the pools
    for (let i = 0; i < 3; i++) {
      await src.sql('UPDATE t SET a = a + 1 WHERE id = 1');
      recording = true;
      const t0 = performance.now();
      await rep.kick('p');
      recording = false;
      report(`one-row kick #${i + 1}`, performance.now() - t0);
    }
    for (let i = 0; i < big; i++) {
      await Promise.all([src.sql('VACUUM t'), tgt.sql('VACUUM t')]);
      await Promise.all([src.sql('CHECKPOINT'), tgt.sql('CHECKPOINT')]);
      await src.sql('UPDATE t SET a = a + 1');
      recording = true;
      const t0 = performance.now();
      await rep.kick('p');
      recording = false;
      report(`${rows}-row kick #${i + 1}`, performance.now() - t0);
    }
    await rep.stop();
    await src.drop();
    await tgt.drop();
  });
}

void main();
