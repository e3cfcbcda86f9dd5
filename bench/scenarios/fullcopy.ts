/**
 * Scenario 4, fullcopy: a 1M-row pgbench_accounts (scale 10) copied whole to a `fullcopy`
 * database by one kick, against two references on the same servers: the raw COPY pipe in Node
 * (TRUNCATE + COPY in one target transaction, text format; also binary, since pgferry copies in
 * binary where it can) and `psql -c "COPY t TO STDOUT" | psql -1 -c "TRUNCATE t" -c "COPY t FROM
 * STDIN"` as a shell pipe. If the kick fails because fullcopy is
 * not implemented, or resolves without the target holding the rows, the table says so.
 */
import { Replicator, isPgferryError } from '../../src/index.js';
import { requireTools, type Scenario, type ScenarioOutput } from '../lib/context.js';
import { psqlPipe, rawCopyPipe } from '../lib/copy.js';
import { createDb } from '../lib/pg.js';
import { pgbenchInit } from '../lib/pgbench.js';
import { figure } from '../lib/report.js';

const TABLE = 'pgbench_accounts';

export const fullcopy: Scenario = {
  name: 'fullcopy',
  title: 'Full copy of pgbench_accounts to a fullcopy database',
  async run(ctx): Promise<ScenarioOutput> {
    const tools = requireTools(ctx);
    const scale = ctx.quick ? 1 : 10;
    const src = await createDb(ctx.a, 'fc_src');
    const tgt = await createDb(ctx.b, 'fc_tgt');
    const rep = new Replicator();
    try {
      ctx.log(`fullcopy: pgbench -i -s ${scale} on the source, empty tables on the target`);
      await Promise.all([pgbenchInit(tools, src, scale), pgbenchInit(tools, tgt, scale, 'dtp')]);
      const expected = Number((await src.sql<{ n: string }>(`SELECT count(*) AS n FROM ${TABLE}`))[0]!.n);
      const srcSum = (await src.sql<{ s: string }>(`SELECT sum(abalance)::text || ':' || sum(aid)::text AS s FROM ${TABLE}`))[0]!.s;
      await rep.addDatabase('src', src.url);
      await rep.addDatabase('fc', tgt.url);
      await rep.addSync('fullcopy', { tables: [TABLE], databases: { src: 'source', fc: 'fullcopy' }, autokick: false });
      await rep.install();

      const ours: number[] = [];
      const raw: number[] = [];
      const rawBinary: number[] = [];
      const shell: number[] = [];
      let status: string | undefined;
      for (let r = 0; r < ctx.runs; r++) {
        if (!status) {
          await tgt.sql(`TRUNCATE ${TABLE}`);
          await Promise.all([src.sql('CHECKPOINT'), tgt.sql('CHECKPOINT')]);
          const t0 = performance.now();
          try {
            await rep.kick('fullcopy');
            const s = performance.now() - t0;
            const got = (await tgt.sql<{ n: string; s: string | null }>(`SELECT count(*) AS n, sum(abalance)::text || ':' || sum(aid)::text AS s FROM ${TABLE}`))[0]!;
            if (Number(got.n) !== expected || got.s !== srcSum) {
              status = `not implemented (kick resolved, target has ${got.n}/${expected} rows)`;
            } else {
              ours.push(s / 1000);
            }
          } catch (err) {
            const msg = (err as Error)?.message ?? String(err);
            status = /not (yet )?implemented|NOT_IMPLEMENTED/i.test(msg) || (isPgferryError(err) && /fullcopy/i.test(msg))
              ? `not implemented (${isPgferryError(err) ? err.code : 'error'})`
              : `error: ${msg.slice(0, 120)}`;
            ctx.log(`fullcopy: kick failed: ${msg}`);
          }
        }
        await Promise.all([src.sql('CHECKPOINT'), tgt.sql('CHECKPOINT')]);
        raw.push((await rawCopyPipe(src.url, tgt.url, `SELECT * FROM ${TABLE}`, TABLE)).seconds);
        await Promise.all([src.sql('CHECKPOINT'), tgt.sql('CHECKPOINT')]);
        shell.push((await psqlPipe(tools, src.url, tgt.url, TABLE)).seconds);
        await Promise.all([src.sql('CHECKPOINT'), tgt.sql('CHECKPOINT')]);
        rawBinary.push((await rawCopyPipe(src.url, tgt.url, `SELECT * FROM ${TABLE}`, TABLE, { binary: true })).seconds);
        ctx.log(`fullcopy run ${r + 1}/${ctx.runs}: pgferry ${ours.at(-1)?.toFixed(2) ?? status} s, raw COPY ${raw.at(-1)!.toFixed(2)} s (binary ${rawBinary.at(-1)!.toFixed(2)} s), psql pipe ${shell.at(-1)!.toFixed(2)} s`);
      }
      const rows = expected >= 1_000_000 ? `${expected / 1_000_000}M` : `${expected / 1000}k`;
      const figures = [
        figure({
          metric: `fullcopy ${rows} rows (${TABLE}), one kick`,
          unit: 's',
          runs: status ? [] : ours,
          ...(status && { status }),
          reference: { label: 'raw COPY pipe', runs: raw },
          ...(!status && { vs: { kind: 'ratio' as const, runs: ours.map((x, i) => x / raw[i]!) } }),
          goal: { text: '<= 1.0x raw COPY pipe', on: 'vs', cmp: '<=', target: 1.0, others: 'Bucardo 1.10x' },
        }),
        figure({
          metric: `fullcopy ${rows} rows vs psql | psql shell pipe`,
          unit: 's',
          runs: status ? [] : ours,
          ...(status && { status }),
          reference: { label: 'psql | psql', runs: shell },
          ...(!status && { vs: { kind: 'ratio' as const, runs: ours.map((x, i) => x / shell[i]!) } }),
        }),
        figure({
          metric: `fullcopy ${rows} rows vs binary raw COPY pipe`,
          unit: 's',
          runs: status ? [] : ours,
          ...(status && { status }),
          reference: { label: 'raw COPY pipe, binary', runs: rawBinary },
          ...(!status && { vs: { kind: 'ratio' as const, runs: ours.map((x, i) => x / rawBinary[i]!) } }),
        }),
        figure({
          metric: `raw COPY pipe ${rows} rows (reference)`,
          unit: 's',
          runs: raw,
          reference: { label: 'psql | psql', runs: shell },
          vs: { kind: 'ratio', runs: raw.map((x, i) => x / shell[i]!) },
        }),
      ];
      const notes = [
        `Target table truncated before each pgferry kick; every reference TRUNCATEs and COPYs in one target transaction; the raw pipe and the psql pipe use text format (pgferry uses binary COPY when the column types allow it, hence the extra binary reference); the shell pipe uses ${tools.psqlVersion}.`,
        ...(status ? [`pgferry: ${status}.`] : []),
      ];
      return { figures, notes, raw: { expected, ours, rawCopy: raw, rawCopyBinary: rawBinary, shell, status } };
    } finally {
      await rep.stop().catch(() => undefined);
      await src.drop().catch(() => undefined);
      await tgt.drop().catch(() => undefined);
    }
  },
};
