/**
 * Scenario transform: throughput of a table with a transform (rows parsed in Node, masked,
 * written back to the staging table) beside the same table without one (COPY → COPY), in the
 * same benchmark run on the same servers: each repetition updates every row of both tables and
 * kicks the plain table's sync, then the transformed one's.
 */
import type { Scenario, ScenarioOutput } from '../lib/context.js';
import { withPair } from '../lib/pair.js';
import { checksum } from '../lib/pg.js';
import { figure } from '../lib/report.js';

const DDL = (name: string) => `CREATE TABLE ${name} (id bigint PRIMARY KEY, name text, email text, amount numeric(12,2), at timestamptz, doc jsonb)`;

export const transform: Scenario = {
  name: 'transform',
  title: 'Throughput of a transformed table beside the same table untransformed',
  async run(ctx): Promise<ScenarioOutput> {
    const rows = ctx.quick ? 20_000 : 200_000;
    return withPair(ctx, 'tr', async (src, tgt, rep) => {
      for (const db of [src, tgt]) await db.sql(`${DDL('plain')}; ${DDL('masked')}`);
      for (const t of ['plain', 'masked']) {
        await src.sql(`INSERT INTO ${t} SELECT g, 'name ' || g, 'user' || g || '@example.com', g / 100.0, now(), jsonb_build_object('n', g) FROM generate_series(1, ${rows}) g`);
      }
      const databases = { src: 'source', tgt: 'target' } as const;
      await rep.addSync('plain', { tables: ['plain'], databases, autokick: false, onetimecopy: 'always' });
      const mask = (row: Record<string, unknown>) => ({ ...row, email: String(row.email).replace(/^[^@]*/, '***') });
      await rep.addSync('masked', { tables: [{ table: 'masked', transform: mask }], databases, autokick: false, onetimecopy: 'always' });
      await rep.install();
      await rep.kick('plain');
      await rep.kick('masked');

      const plain: number[] = [];
      const masked: number[] = [];
      for (let r = 0; r < ctx.runs; r++) {
        for (const t of ['plain', 'masked']) await src.sql(`UPDATE ${t} SET amount = amount + 1`);
        const t0 = performance.now();
        await rep.kick('plain');
        const t1 = performance.now();
        await rep.kick('masked');
        const t2 = performance.now();
        plain.push(rows / ((t1 - t0) / 1000));
        masked.push(rows / ((t2 - t1) / 1000));
        ctx.log(`transform run ${r + 1}/${ctx.runs}: plain ${Math.round(plain.at(-1)!)} rows/s, transformed ${Math.round(masked.at(-1)!)} rows/s`);
      }
      const [p, m] = [await checksum(tgt, 'plain'), await checksum(tgt, 'masked')];
      const masks = (await tgt.sql<{ n: string }>(`SELECT count(*) AS n FROM masked WHERE email LIKE '***@%'`))[0]!.n;
      const ok = p.count === rows && m.count === rows && Number(masks) === rows;
      const label = rows >= 1000 ? `${rows / 1000}k` : String(rows);
      const figures = [
        figure({
          metric: `transformed table, ${label} changed rows, one kick`,
          unit: 'rows/s',
          runs: ok ? masked : [],
          ...(!ok && { status: `target check failed (plain ${p.count}, masked ${m.count}, masks ${masks} of ${rows})` }),
          reference: { label: 'same table untransformed', runs: plain },
          vs: { kind: 'ratio', runs: masked.map((x, i) => x / plain[i]!) },
        }),
        figure({ metric: `untransformed table, ${label} changed rows, one kick`, unit: 'rows/s', runs: plain }),
      ];
      const notes = ['Both tables: id bigint, text, text, numeric, timestamptz, jsonb; every row updated before each kick. The transform masks the e-mail; rows are read back from the staging table 1000 at a time.'];
      return { figures, notes, raw: { rows, plain, masked } };
    });
  },
};
