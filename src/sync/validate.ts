/**
 * validate(): compares every table of a sync across its databases and reports the keys whose
 * rows differ or are missing; with `repair`, makes every database equal to the winner (see
 * repair.ts). Comparison hashes key ranges on the servers (compare.ts; keys whose order may
 * differ between databases, and tables without a key: hash buckets, buckets.ts): rows of equal
 * ranges never leave them. Each database is read in one REPEATABLE
 * READ transaction. Memory holds a batch of ranges, one leaf batch and the listed differences.
 */
import createDebug from 'debug';
import { z } from 'zod';
import { PgferryError } from '../errors.js';
import { checkReceivers } from '../apply/applier.js';
import { copiedColumns, estimateRows, orderByDependencies, requireTable, type TableInfo } from '../catalog/tables.js';
import { parseConfig } from '../config.js';
import type { Database } from '../db/database.js';
import { runLock } from '../db/locks.js';
import { Session } from '../db/session.js';
import type { Emit } from '../events.js';
import { namesWithRole, type SyncPlan } from '../plan.js';
import { displayName } from '../sql/ident.js';
import { APPLIED_BY_SETTING } from '../sql/names.js';
import type { RowKey } from '../types.js';
import { compareKeyed, type FoundKey, type TableCheck } from './compare.js';
import { asRunError } from './context.js';
import { compareKeyedByBuckets, compareMultiset } from './buckets.js';
import { hashProbe, stableOrder, type SummaryHash } from './ranges.js';
import { generation, lockOrder, lockSources } from './read.js';
import { Repair, type RepairTable, type TableRepair } from './repair.js';

export type { TableRepair } from './repair.js';

const debug = createDebug('pgferry:validate');

export interface TableDifference {
  key: RowKey;
  /** Databases without a row for the key. */
  missingOn: string[];
  /** Databases whose row differs from the first database's row that has one. */
  differsOn: string[];
}

export interface TableValidation {
  rows: Record<string, number>;
  equal: boolean;
  differences: TableDifference[];
  /** True when more differences existed than were listed. */
  truncated: boolean;
  /** With `repair`: the database whose rows were kept. */
  winner?: string;
  /** With `repair`: what changed on each database that differed. */
  repaired?: Record<string, TableRepair>;
  /** With `repair`: why the table was left as it is, when it was. */
  repairSkipped?: string;
}

export interface ValidationResult {
  sync: string;
  /** Whether every table was equal everywhere (before any repair). */
  equal: boolean;
  tables: Record<string, TableValidation>;
  /** True when `repair` ran (differences then list what was found, and `repaired` what changed). */
  repaired?: boolean;
}

export const validateOptionsSchema = z.strictObject({
  /** Make every database equal to the sources (see README, "Repair"). */
  repair: z.boolean().default(false),
});
export type ValidateOptions = z.input<typeof validateOptionsSchema>;

export interface ValidateDeps {
  dbs: ReadonlyMap<string, Database>;
  schema: string;
  emit: Emit;
  /** The kind of each database that is not PostgreSQL (validate compares PostgreSQL only). */
  otherKinds?: ReadonlyMap<string, string>;
}

const MAX_LISTED = 1000;
/** How often validate:progress reports while a table is compared. */
const PROGRESS_EVERY_MS = 250;

export async function validateSync(plan: SyncPlan, deps: ValidateDeps, options: ValidateOptions = {}): Promise<ValidationResult> {
  const other = plan.databases.find((d) => deps.otherKinds?.has(d.name));
  if (other) {
    throw new PgferryError(
      'NOT_SUPPORTED',
      `validate() compares PostgreSQL databases only, and database "${other.name}" of sync "${plan.name}" is ${deps.otherKinds!.get(other.name)}. Compare it with your own query, or run kick('${plan.name}', { onetimecopy: 'always' }) to copy every table to it again.`,
      { sync: plan.name, database: other.name },
    );
  }
  const { repair } = parseConfig(validateOptionsSchema, options, 'validate options');
  // A repair would write whole rows: unfiltered, every column, untransformed (a masked copy
  // would get the data it was made without).
  const partial = repair ? [...(plan.partial?.keys() ?? [])] : [];
  if (partial.length > 0) {
    throw new PgferryError(
      'CONFIG_INVALID',
      `validate(): repair is not supported for sync "${plan.name}": ${partial.join(', ')} ${partial.length === 1 ? 'has' : 'have'} columns, where or transform, and a repair would write whole, untransformed rows. Validate without repair, or copy the table again (kick with onetimecopy: 'always').`,
      { sync: plan.name, table: partial[0] },
    );
  }
  const sessions = new Map<string, Session>();
  const open = async (name: string): Promise<Session> => {
    const s = await Session.open(deps.dbs.get(name)!);
    sessions.set(name, s);
    return s;
  };
  try {
    // A repair serializes with runs: their lock on every source, before any snapshot.
    const sources = namesWithRole(plan, 'source');
    if (repair) await lockSources(sources, runLock(deps.schema, plan.name), open);
    for (const d of plan.databases) if (!sessions.has(d.name)) await open(d.name);
    const ordered = plan.databases.map((d) => sessions.get(d.name)!);
    for (const s of ordered) await s.begin('repeatable read', repair ? { [APPLIED_BY_SETTING]: plan.name } : {});
    const fixer = repair ? new Repair(plan, deps.schema, sessions, await generation(sessions.get(lockOrder(sources)[0]!)!)) : null;
    const probes = await Promise.all(ordered.map((s) => hashProbe(s)));
    const hash: SummaryHash = probes.every((p) => p === probes[0]) ? 'fast' : 'md5';
    const tables: TableInfo[] = [];
    for (const rel of plan.relations) {
      const t = await requireTable(ordered[0]!.client, rel, ordered[0]!.name);
      if (t.kind === 'table') tables.push(t);
    }
    const results = new Map<string, TableValidation>();
    for (const t of orderByDependencies(tables)) results.set(displayName(t), await validateTable(plan, deps, { sessions: ordered, hash }, t, fixer));
    if (fixer) await fixer.apply();
    const out: ValidationResult = { sync: plan.name, equal: true, tables: {}, ...(repair && { repaired: true }) };
    for (const t of tables) {
      const v = results.get(displayName(t))!;
      out.tables[displayName(t)] = v;
      if (!v.equal) out.equal = false;
    }
    if (fixer) for (const rt of fixer.tables) report(out.tables[rt.display]!, rt);
    return out;
  } catch (err) {
    // A PgferryError as it is (naming the sync); anything else as RUN_FAILED with its SQLSTATE.
    throw asRunError(err, plan.name);
  } finally {
    for (const s of sessions.values()) await s.close();
  }
}

function report(v: TableValidation, t: RepairTable): void {
  v.winner = t.winner;
  v.repaired = t.repaired;
  if (t.skipped) v.repairSkipped = t.skipped;
}

async function validateTable(
  plan: SyncPlan,
  deps: ValidateDeps,
  { sessions, hash }: { sessions: Session[]; hash: SummaryHash },
  t: TableInfo,
  fixer: Repair | null,
): Promise<TableValidation> {
  const first = sessions[0]!;
  const display = displayName(t);
  const columns = copiedColumns(t);
  const here = new Map<string, TableInfo>([[first.name, t]]);
  for (const s of sessions.slice(1)) here.set(s.name, (await checkReceivers(s, [{ info: t, columns }], first.name))[0]!);
  const rt = fixer ? await fixer.table(t, here, columns) : null;
  const names = sessions.map((s) => s.name);
  const v: TableValidation = { rows: {}, equal: true, differences: [], truncated: false };
  const note = (d: TableDifference): void => {
    v.equal = false;
    if (v.differences.length < MAX_LISTED) v.differences.push(d);
    else v.truncated = true;
  };
  const listed = new Set<string>();
  const totalEstimate = await estimateRows(first.client, t);
  let rows = 0;
  let last = performance.now();
  const progress = (done: boolean) => deps.emit('validate:progress', { sync: plan.name, table: display, rows, totalEstimate, done });
  const check: TableCheck = {
    sessions,
    table: t,
    columns,
    hash,
    settled: (n) => {
      rows += n;
      if (performance.now() - last < PROGRESS_EVERY_MS) return;
      last = performance.now();
      progress(false);
    },
    differ: async (found: FoundKey[]) => {
      for (const f of found) {
        // (Ranges and buckets partition the keys, so a key comes once; this keeps the list exact if not.)
        const id = JSON.stringify(f.kt);
        if (listed.has(id)) continue;
        if (listed.size < MAX_LISTED) listed.add(id);
        note(difference(f, names));
      }
      if (rt) await fixer!.keys(rt, found);
    },
  };
  const totals =
    t.key.length > 0
      ? stableOrder(t)
        ? await compareKeyed(check, totalEstimate)
        : await compareKeyedByBuckets(check)
      : await compareMultiset(check, (found) => {
          for (const f of found) {
            const most = Math.max(...f.copies);
            note({ key: f.key, missingOn: names.filter((_, d) => f.copies[d]! < most), differsOn: [] });
            if (rt) names.forEach((name, d) => f.copies[d] !== f.copies[names.indexOf(rt.winner)] && rt.replace.add(name));
          }
        });
  names.forEach((name, d) => (v.rows[name] = totals[d]!));
  rows = totals[0]!;
  progress(true);
  debug('%s %s: %s, %d differences', plan.name, display, v.equal ? 'equal' : 'differs', v.differences.length + (v.truncated ? 1 : 0));
  return v;
}

/** A differing key as reported: where it is missing, and where its row differs from the first one there. */
function difference(f: FoundKey, names: string[]): TableDifference {
  const ref = f.hashes.find((h) => h !== null);
  return {
    key: f.key,
    missingOn: names.filter((_, d) => f.hashes[d] === null),
    differsOn: names.filter((_, d) => f.hashes[d] !== null && f.hashes[d] !== ref),
  };
}
