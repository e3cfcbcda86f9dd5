/**
 * Scenario validate: validate() of an equal 1M-row table (the shape of pgbench_accounts,
 * made with generate_series on each server) between a source and a target, against the
 * least a row-by-row comparison would have to do: `COPY (SELECT ...) TO STDOUT` of the whole
 * table from both servers at once into Node (the bytes counted and dropped), timed in the
 * same run. validate() hashes key ranges on the servers and moves no rows of equal ranges.
 */
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { Replicator } from '../../src/index.js';
import type { Scenario, ScenarioOutput } from '../lib/context.js';
import { createDb, type BenchDb } from '../lib/pg.js';
import { figure } from '../lib/report.js';

const TABLE = 'accounts';

async function createTable(db: BenchDb, rows: number): Promise<void> {
  await db.sql(`CREATE TABLE ${TABLE} (aid int PRIMARY KEY, bid int NOT NULL, abalance int NOT NULL, filler char(84));
                INSERT INTO ${TABLE} SELECT g, (g - 1) / 100000 + 1, 0, '' FROM generate_series(1, ${rows}) g`);
  await db.sql(`VACUUM ANALYZE ${TABLE}`);
}

/** COPY of the whole table out of one server into Node; resolves with the bytes read. */
async function copyOut(url: string): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    let bytes = 0;
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        bytes += chunk.length;
        done();
      },
    });
    await pipeline(c.query(copyTo(`COPY (SELECT * FROM ${TABLE}) TO STDOUT`)), sink);
    return bytes;
  } finally {
    await c.end().catch(() => undefined);
  }
}

export const validate: Scenario = {
  name: 'validate',
  title: 'validate() of an equal 1M-row table vs COPY of it out of both servers',
  async run(ctx): Promise<ScenarioOutput> {
    const rows = ctx.quick ? 100_000 : 1_000_000;
    const src = await createDb(ctx.a, 'va_src');
    const tgt = await createDb(ctx.b, 'va_tgt');
    const rep = new Replicator();
    try {
      ctx.log(`validate: ${rows} equal rows on both servers`);
      await Promise.all([createTable(src, rows), createTable(tgt, rows)]);
      await rep.addDatabase('src', src.url);
      await rep.addDatabase('tgt', tgt.url);
      await rep.addSync('v', { tables: [TABLE], databases: { src: 'source', tgt: 'target' }, autokick: false });
      await rep.install();
      const ours: number[] = [];
      const copy: number[] = [];
      let bytes = 0;
      for (let r = 0; r < ctx.runs; r++) {
        await Promise.all([src.sql('CHECKPOINT'), tgt.sql('CHECKPOINT')]);
        let t0 = performance.now();
        const v = await rep.validate('v');
        ours.push((performance.now() - t0) / 1000);
        if (!v.equal) throw new Error(`validate: the tables should be equal: ${JSON.stringify(v.tables).slice(0, 300)}`);
        t0 = performance.now();
        const out = await Promise.all([copyOut(src.url), copyOut(tgt.url)]);
        copy.push((performance.now() - t0) / 1000);
        bytes = out[0]! + out[1]!;
        ctx.log(`validate run ${r + 1}/${ctx.runs}: validate ${ours.at(-1)!.toFixed(2)} s, COPY out of both ${copy.at(-1)!.toFixed(2)} s (${(bytes / 2 ** 20).toFixed(0)} MiB)`);
      }
      const label = rows >= 1_000_000 ? `${rows / 1_000_000}M` : `${rows / 1000}k`;
      const figures = [
        figure({
          metric: `validate ${label} equal rows`,
          unit: 's',
          runs: ours,
          reference: { label: 'COPY TO STDOUT of both', runs: copy },
          vs: { kind: 'ratio', runs: ours.map((x, i) => x / copy[i]!) },
          goal: { text: '<= 1.0x COPY out of both servers', on: 'vs', cmp: '<=', target: 1.0 },
        }),
      ];
      const notes = [
        `The reference streams ${(bytes / 2 ** 20).toFixed(0)} MiB (text COPY of both tables, at once) into Node and drops it: the least that comparing rows in Node costs; validate() moves no rows of equal tables. CHECKPOINT before each validate.`,
      ];
      return { figures, notes, raw: { rows, ours, copy, bytes } };
    } finally {
      await rep.stop().catch(() => undefined);
      await src.drop().catch(() => undefined);
      await tgt.drop().catch(() => undefined);
    }
  },
};
