/** The human form of results: run results, status and validation reports, as text lines. */
import type { RunRecord, RunResult, TableResult, ValidationResult } from '../index.js';

/** Differences listed per table in text (all of them are in --json). */
const LISTED = 20;

const counts = (t: TableResult) => `${t.upserted} upserted, ${t.deleted} deleted, ${t.conflicts} conflicts`;

export function runLines(r: RunResult): string[] {
  const head = r.status === 'empty' ? `${r.sync}: nothing to send (${r.durationMs} ms)` : `${r.sync}: ok in ${r.durationMs} ms, ${counts(r.totals)}`;
  const tables = r.status === 'empty' ? [] : Object.entries(r.tables).map(([t, c]) => `  ${t}: ${counts(c)}`);
  return [head, ...tables];
}

export interface SyncReport {
  databases: Record<string, string>;
  autokick: boolean;
  backlog: Record<string, number | null>;
  /** Why a source's backlog could not be read (by source). */
  errors: Record<string, string>;
  lagMs: number;
  lastRun: RunRecord | null;
}

export function statusLines(syncs: Record<string, SyncReport>): string[] {
  const out: string[] = [];
  for (const [name, s] of Object.entries(syncs)) {
    const dbs = Object.entries(s.databases).map(([d, role]) => `${d} (${role})`).join(', ');
    out.push(`${name}: ${dbs}; autokick ${s.autokick ? 'on' : 'off'}`);
    const backlog = Object.entries(s.backlog).map(([d, n]) => `${d} ${n ?? 'unreadable'}`).join(', ');
    out.push(`  backlog: ${backlog || 'none'}; lag ${s.lagMs} ms`);
    for (const [d, e] of Object.entries(s.errors)) out.push(`  ${d} unreadable: ${e}`);
    out.push(`  last run: ${s.lastRun ? lastRunText(s.lastRun) : 'none recorded'}`);
  }
  return out.length ? out : ['no syncs'];
}

function lastRunText(r: RunRecord): string {
  const what = r.status === 'error' ? `error ${r.error?.code ?? ''}: ${r.error?.message ?? ''}` : `${r.status}, ${r.rows} rows`;
  return `${new Date(r.startedAt).toISOString()} (${r.reason}, ${r.durationMs} ms) ${what}${r.instance ? ` by ${r.instance}` : ''}`;
}

export function validationLines(v: ValidationResult): string[] {
  const out = [`${v.sync}: ${v.equal ? 'equal' : 'differences found'}`];
  for (const [table, t] of Object.entries(v.tables)) {
    const rows = Object.entries(t.rows).map(([d, n]) => `${d} ${n}`).join(', ');
    out.push(`  ${table}: ${t.equal ? 'equal' : `${t.differences.length}${t.truncated ? '+' : ''} differences`} (rows: ${rows})`);
    for (const d of t.differences.slice(0, LISTED)) {
      const where = [d.missingOn.length ? `missing on ${d.missingOn.join(', ')}` : '', d.differsOn.length ? `differs on ${d.differsOn.join(', ')}` : ''];
      out.push(`    ${JSON.stringify(d.key)}: ${where.filter(Boolean).join('; ')}`);
    }
    if (t.differences.length > LISTED) out.push(`    … and ${t.differences.length - LISTED} more (all of them with --json)`);
  }
  // Anything else the report carries (what a repair changed, say) is shown as it is.
  for (const [k, extra] of Object.entries(v)) {
    if (!['sync', 'equal', 'tables'].includes(k)) out.push(`  ${k}: ${JSON.stringify(extra)}`);
  }
  return out;
}
