/**
 * The benchmark suite runs: `tsx bench/run.ts --quick` exits 0, prints the results table and
 * writes a JSON file naming every scenario. It checks that the suite works, not how fast
 * pgferry is. The suite starts its own two servers (not the shared test servers).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SCENARIOS = ['overhead', 'latency', 'bulk', 'memory', 'fullcopy', 'multimaster', 'instances', 'validate', 'native', 'transform', 'targets'];

function runQuick(): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('npx', ['tsx', 'bench/run.ts', '--quick'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += String(d)));
    child.stderr.on('data', (d) => (stderr += String(d)));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

// About 30 s of quick runs plus, for `native`, four more servers of its own: 180 s leaves room on a busy machine.
it('runs the quick benchmark suite end to end', { timeout: 180_000 }, async () => {
  const { code, stdout, stderr } = await runQuick();
  if (code !== 0) console.error(`bench/run.ts --quick exited with ${code}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`);
  expect(code).toBe(0);

  expect(stdout).toContain('pgferry benchmark results');
  const header = stdout.split('\n').find((l) => l.startsWith('scenario '));
  expect(header, 'results table header').toBeDefined();
  for (const s of SCENARIOS) expect(stdout).toMatch(new RegExp(`^${s}\\s`, 'm'));

  const m = /results written to (\S+\.json)/.exec(stdout);
  expect(m, 'path of the JSON file').not.toBeNull();
  const file = path.resolve(root, m![1]!);
  const doc = JSON.parse(await fs.readFile(file, 'utf8')) as {
    mode: string;
    scenarios: { name: string; error?: string; figures: { metric: string }[] }[];
  };
  expect(doc.mode).toBe('quick');
  expect(doc.scenarios.map((s) => s.name)).toEqual(SCENARIOS);
  for (const s of doc.scenarios) {
    expect(s.error, `${s.name} error`).toBeUndefined();
    expect(s.figures.length, `${s.name} figures`).toBeGreaterThan(0);
  }
  await fs.rm(file, { force: true });
});
