/** pgbench (from the OS's PostgreSQL 15 install) against the benchmark servers. */
import path from 'node:path';
import { systemBinDir } from '../../tools/pg-servers.js';
import type { BenchDb } from './pg.js';
import { run, runOk } from './proc.js';

export interface ClientTools {
  binDir: string;
  pgbench: string;
  psql: string;
  /** e.g. 'pgbench (PostgreSQL) 15.14' */
  pgbenchVersion: string;
  psqlVersion: string;
}

export async function findClientTools(): Promise<ClientTools | null> {
  for (const major of [18, 17, 16, 15]) {
    const dir = systemBinDir(major);
    if (!dir) continue;
    const pgbench = path.join(dir, 'pgbench');
    const psql = path.join(dir, 'psql');
    const v1 = await run(pgbench, ['--version']).catch(() => null);
    const v2 = await run(psql, ['--version']).catch(() => null);
    if (v1?.code === 0 && v2?.code === 0) {
      return { binDir: dir, pgbench, psql, pgbenchVersion: v1.stdout.trim(), psqlVersion: v2.stdout.trim() };
    }
  }
  return null;
}

export async function pgbenchInit(tools: ClientTools, db: BenchDb, scale: number, steps?: string): Promise<number> {
  const args = ['-i', '-q', '-s', String(scale)];
  if (steps) args.push('-I', steps);
  const r = await runOk(tools.pgbench, args, { env: db.env(), timeoutMs: 600_000 });
  return r.ms;
}

export interface PgbenchResult {
  tps: number;
  transactions: number;
  latencyAvgMs: number;
  failed: number;
  output: string;
}

/** Runs pgbench with `args`; returns tps (without initial connection time). */
export async function pgbenchRun(tools: ClientTools, db: BenchDb, args: string[]): Promise<PgbenchResult> {
  const r = await runOk(tools.pgbench, args, { env: db.env(), timeoutMs: 600_000 });
  const out = r.stdout + '\n' + r.stderr;
  const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(out)?.[1] ?? /tps = ([\d.]+)/.exec(out)?.[1]);
  const transactions = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1] ?? NaN);
  const latencyAvgMs = Number(/latency average = ([\d.]+) ms/.exec(out)?.[1] ?? NaN);
  const failed = Number(/number of failed transactions: (\d+)/.exec(out)?.[1] ?? 0);
  if (!Number.isFinite(tps)) throw new Error(`could not read tps from pgbench output:\n${out}`);
  return { tps, transactions, latencyAvgMs, failed, output: out };
}
