/**
 * The examples run as a user runs them: examples/prometheus.ts and examples/sqlite-copy.ts in a child process (tsx, from the
 * repository root so `pgferry` is the source), on the shared test servers, printing the pgferry
 * lines of its own Prometheus endpoint.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { expect, inject, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TSX = pathToFileURL(path.join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
const TIMEOUT_MS = 120_000;

function run(file: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', TSX, file], {
    cwd: ROOT,
    env: { ...process.env, DEBUG: '', NO_COLOR: '1', PGFERRY_TEST_SERVERS: inject('servers').join(',') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += String(d)));
  child.stderr.on('data', (d: Buffer) => (stderr += String(d)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${file} did not end within ${TIMEOUT_MS} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, TIMEOUT_MS);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

it('examples/prometheus.ts exposes every pgferry instrument on /metrics with its sync attribute, and exits', { timeout: TIMEOUT_MS + 10_000 }, async () => {
  const r = await run('examples/prometheus.ts');
  const shown = `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
  expect(r.code, shown).toBe(0);
  expect(r.stdout, shown).toContain('GET /metrics: 200');
  const lines = r.stdout.split('\n');
  // The names as the exporter spells them: dots become underscores, counters get `_total`.
  const expected = {
    pgferry_runs_total: 'counter',
    pgferry_run_duration: 'histogram',
    pgferry_rows_applied_total: 'counter',
    pgferry_backlog: 'gauge',
    pgferry_lag: 'gauge',
  };
  for (const [name, type] of Object.entries(expected)) expect(lines, shown).toContain(`# TYPE ${name} ${type}`);
  const sample = (prefix: string) => lines.find((l) => l.startsWith(prefix)) ?? '';
  expect(sample('pgferry_runs_total{'), shown).toMatch(/^pgferry_runs_total\{sync="shop",status="ok",.*\} 1$/);
  expect(sample('pgferry_run_duration_count{'), shown).toMatch(/^pgferry_run_duration_count\{sync="shop",status="ok",.*\} 1$/);
  expect(sample('pgferry_rows_applied_total{'), shown).toMatch(/^pgferry_rows_applied_total\{sync="shop",table="public.orders",.*\} 5$/);
  // Two keys left pending on the source.
  expect(sample('pgferry_backlog{'), shown).toMatch(/^pgferry_backlog\{sync="shop",database="a",.*\} 2$/);
  expect(sample('pgferry_lag{'), shown).toMatch(/^pgferry_lag\{sync="shop",.*\} \d+$/);
});

it('examples/sqlite-copy.ts copies two tables into a SQLite file, then sends an update, a delete and an insert', { timeout: TIMEOUT_MS + 10_000 }, async () => {
  const r = await run('examples/sqlite-copy.ts');
  const shown = `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
  expect(r.code, shown).toBe(0);
  expect(r.stdout.trim().split('\n'), shown).toEqual([
    'first run: 2 rows copied into catalogue.db',
    'next run: 2 upserted, 1 deleted',
    'products {"id":1,"name":"kettle","price":"26.50","tags":"{kitchen}","in_stock":1}',
    'prices_changed {"id":1,"at":"2026-05-01T10:00:00Z"}',
  ]);
});
