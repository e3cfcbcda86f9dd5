/**
 * Results of the benchmark suite: figures (median and spread over runs), their references
 * measured in the same invocation, the goals they are held to, a printed table and JSON.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { summarize, type Summary } from './stats.js';

export interface Goal {
  /** What the goal says, e.g. '<= 8 %'. */
  text: string;
  /** Which number the goal applies to: the figure itself or its comparison with the reference. */
  on: 'value' | 'vs';
  cmp: '<=' | '>=' | '<';
  target: number;
  /** Other systems' figures, for context, e.g. 'Bucardo 20 %; built-in 23 %'. */
  others?: string;
}

export interface GoalResult extends Goal {
  met: boolean | null;
  /** How far the median misses the goal, in the goal's unit, when it does. */
  missedBy?: string;
}

export interface Figure {
  metric: string;
  unit: string;
  value: Summary | null;
  /** When there is no value: why (e.g. 'not implemented'). */
  status?: string;
  reference?: { label: string; unit: string; value: Summary };
  /** Figure compared with its reference, computed per run and summarized. */
  vs?: { kind: 'overhead %' | 'ratio' | 'delta' | 'share %'; value: Summary };
  goal?: GoalResult;
  note?: string;
}

export interface ScenarioResult {
  name: string;
  title: string;
  runs: number;
  durationS: number;
  figures: Figure[];
  notes: string[];
  error?: string;
  /** Per-run raw measurements, for the JSON file. */
  raw?: unknown;
}

export function overheadPct(withX: number, without: number): number {
  return ((without - withX) / without) * 100;
}

/** Builds a figure from per-run values, an optional reference per run, and a goal. */
export function figure(opts: {
  metric: string;
  unit: string;
  runs: number[];
  reference?: { label: string; unit?: string; runs: number[] };
  vs?: { kind: NonNullable<Figure['vs']>['kind']; runs: number[] };
  goal?: Goal;
  note?: string;
  status?: string;
}): Figure {
  const value = opts.runs.some((x) => Number.isFinite(x)) ? summarize(opts.runs) : null;
  const f: Figure = { metric: opts.metric, unit: opts.unit, value };
  if (opts.status) f.status = opts.status;
  if (opts.reference) f.reference = { label: opts.reference.label, unit: opts.reference.unit ?? opts.unit, value: summarize(opts.reference.runs) };
  if (opts.vs) f.vs = { kind: opts.vs.kind, value: summarize(opts.vs.runs) };
  if (opts.note) f.note = opts.note;
  if (opts.goal) f.goal = judge(opts.goal, opts.goal.on === 'vs' ? f.vs?.value.median : value?.median, opts.goal.on === 'vs' ? vsUnit(f) : opts.unit);
  return f;
}

function vsUnit(f: Figure): string {
  return f.vs?.kind === 'ratio' ? 'x' : f.vs?.kind === 'delta' ? f.unit : '%';
}

function judge(goal: Goal, m: number | undefined, unit: string): GoalResult {
  if (m === undefined || !Number.isFinite(m)) return { ...goal, met: null };
  const met = goal.cmp === '<=' ? m <= goal.target : goal.cmp === '<' ? m < goal.target : m >= goal.target;
  return met ? { ...goal, met } : { ...goal, met, missedBy: missText(goal, m, unit) };
}

/** "17.2 ms (3.4x the goal)", "30.2 points", "53,449 rows/s (36 % short)". */
function missText(goal: Goal, m: number, unit: string): string {
  const diff = Math.abs(m - goal.target);
  if (unit === '%') return `${fmt(diff)} points`;
  if (goal.target === 0) return `${fmt(diff)} ${unit}`;
  const rel = goal.cmp === '>='
    ? `${fmt((diff / goal.target) * 100)} % short`
    : m / goal.target >= 2 ? `${fmt(m / goal.target)}x the goal` : `${fmt((diff / goal.target) * 100)} % over`;
  return `${fmt(diff)} ${unit} (${rel})`;
}

export function fmt(x: number | undefined | null): string {
  if (x === undefined || x === null || !Number.isFinite(x)) return '-';
  const a = Math.abs(x);
  if (Number.isInteger(x) && a < 10_000) return String(x);
  if (a >= 10_000) return Math.round(x).toLocaleString('en-US');
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  if (a === 0) return '0';
  return x.toPrecision(2);
}

function spread(s: Summary | null | undefined): string {
  if (!s || !Number.isFinite(s.median)) return '-';
  if (s.runs.length < 2) return '';
  return `${fmt(s.min)}–${fmt(s.max)}`;
}

function vsText(f: Figure): string {
  if (!f.vs || !Number.isFinite(f.vs.value.median)) return '-';
  const m = f.vs.value.median;
  switch (f.vs.kind) {
    case 'ratio': return `${fmt(m)}x`;
    case 'overhead %': return `${fmt(m)} % overhead`;
    case 'share %': return `${fmt(m)} %`;
    case 'delta': return `${m >= 0 ? '+' : ''}${fmt(m)} ${f.unit}`;
  }
}

function goalText(f: Figure): [string, string] {
  const g = f.goal;
  if (!g) return ['', ''];
  const text = g.text + (g.others ? ` [${g.others}]` : '');
  const m = g.on === 'vs' ? f.vs?.value.median : f.value?.median;
  const again = judge(g, m, g.on === 'vs' ? vsUnit(f) : f.unit);
  const verdict = again.met === null ? 'n/a' : again.met ? 'met' : `MISSED by ${again.missedBy}`;
  return [text, verdict];
}

export function tableRows(results: ScenarioResult[]): string[][] {
  const rows: string[][] = [['scenario', 'metric', 'median', 'spread (min–max)', 'reference (median)', 'vs reference', 'goal [others]', 'result']];
  for (const r of results) {
    if (r.error && r.figures.length === 0) {
      rows.push([r.name, 'ERROR', r.error.split('\n')[0]!.slice(0, 100), '', '', '', '', '']);
      continue;
    }
    for (const f of r.figures) {
      const value = f.value ? `${fmt(f.value.median)} ${f.unit}` : (f.status ?? '-');
      const ref = f.reference ? `${fmt(f.reference.value.median)} ${f.reference.unit} (${f.reference.label})` : '-';
      const [g, verdict] = goalText(f);
      rows.push([r.name, f.metric, value, spread(f.value), ref, vsText(f), g, f.value || !f.goal ? verdict : (f.status ?? 'n/a')]);
    }
    if (r.error) rows.push([r.name, 'ERROR', r.error.split('\n')[0]!.slice(0, 100), '', '', '', '', '']);
  }
  return rows;
}

/** A plain-text table (also valid as a Markdown table body with `markdown`). */
export function renderTable(rows: string[][], markdown = false): string {
  if (markdown) {
    const esc = (s: string) => s.replace(/\|/g, '\\|');
    const [head, ...body] = rows;
    return [
      `| ${head!.map(esc).join(' | ')} |`,
      `|${head!.map(() => '---').join('|')}|`,
      ...body.map((r) => `| ${r.map(esc).join(' | ')} |`),
    ].join('\n');
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

export async function writeJson(dir: string, doc: unknown): Promise<string> {
  await fs.mkdir(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const file = path.join(dir, `${stamp}.json`);
  await fs.writeFile(file, JSON.stringify(doc, null, 2) + '\n');
  return file;
}
