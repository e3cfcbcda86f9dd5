/**
 * References for moving rows: a raw COPY pipe between two servers in Node (pg-copy-streams,
 * as pgferry's applier uses), and the same through two psql processes and a shell pipe.
 */
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import type { ClientTools } from './pgbench.js';
import { runOk } from './proc.js';

export interface CopyResult {
  seconds: number;
  rows: number;
}

/**
 * `COPY (select) TO STDOUT` on the source piped into `COPY target FROM STDIN` on the target, in
 * one target transaction that first empties the target table. Timed from BEGIN to COMMIT.
 * Text format unless `binary`.
 */
export async function rawCopyPipe(srcUrl: string, dstUrl: string, select: string, target: string, opts: { truncate?: boolean; binary?: boolean } = {}): Promise<CopyResult> {
  const src = new pg.Client({ connectionString: srcUrl });
  const dst = new pg.Client({ connectionString: dstUrl });
  await src.connect();
  await dst.connect();
  try {
    const t0 = performance.now();
    await dst.query('BEGIN');
    if (opts.truncate !== false) await dst.query(`TRUNCATE ${target}`);
    const fmt = opts.binary ? ' (FORMAT binary)' : '';
    const reader = src.query(copyTo(`COPY (${select}) TO STDOUT${fmt}`));
    const writer = dst.query(copyFrom(`COPY ${target} FROM STDIN${fmt}`));
    await pipeline(reader, writer);
    await dst.query('COMMIT');
    return { seconds: (performance.now() - t0) / 1000, rows: writer.rowCount };
  } finally {
    await src.end().catch(() => undefined);
    await dst.end().catch(() => undefined);
  }
}

/**
 * `psql -c "COPY t TO STDOUT" | psql -1 -c "TRUNCATE t" -c "COPY t FROM STDIN"`, timed
 * around the whole shell pipeline (including the two psql connections).
 */
export async function psqlPipe(tools: ClientTools, srcUrl: string, dstUrl: string, table: string): Promise<CopyResult> {
  const script = `set -o pipefail; "$PSQL" "$SRC" -X -q -v ON_ERROR_STOP=1 -c "COPY ${table} TO STDOUT" | "$PSQL" "$DST" -X -q -v ON_ERROR_STOP=1 -1 -c "TRUNCATE ${table}" -c "COPY ${table} FROM STDIN"`;
  const r = await runOk('bash', ['-c', script], { env: { ...process.env, PSQL: tools.psql, SRC: srcUrl, DST: dstUrl }, timeoutMs: 600_000 });
  return { seconds: r.ms / 1000, rows: NaN };
}
