/**
 * Prints a results file as Markdown (the table and the notes), for BENCHMARKS.md.
 *
 *   npx tsx bench/markdown.ts [bench/results/<timestamp>.json]   (default: the newest)
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderTable, tableRows, type ScenarioResult } from './lib/report.js';

const here = path.dirname(fileURLToPath(import.meta.url));

async function newest(): Promise<string> {
  const dir = path.join(here, 'results');
  const files = (await fs.readdir(dir)).filter((f) => f.endsWith('.json')).sort();
  if (files.length === 0) throw new Error(`no results in ${dir}; run npx tsx bench/run.ts first`);
  return path.join(dir, files.at(-1)!);
}

const file = process.argv[2] ?? (await newest());
const doc = JSON.parse(await fs.readFile(file, 'utf8')) as {
  command: string;
  mode: string;
  runs: number;
  durationS: number;
  startedAt: string;
  scenarios: ScenarioResult[];
};
console.log(`Command: \`${doc.command}\` (${doc.mode} mode, ${doc.runs} runs, ${doc.durationS} s, started ${doc.startedAt})\n`);
console.log(renderTable(tableRows(doc.scenarios), true));
console.log('');
for (const s of doc.scenarios) {
  for (const n of s.notes) console.log(`- ${s.name}: ${n}`);
  if (s.error) console.log(`- ${s.name}: ERROR ${s.error.split('\n')[0]}`);
}
