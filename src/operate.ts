/**
 * Knowing it is right, for the face: counters of this instance's runs, metrics per sync (the
 * counters plus backlog and lag read from the sources), and waiting until the changes
 * committed on a database were applied everywhere (read-your-writes).
 */
import type { Database } from './db/database.js';
import { currentSnapshot, deliveredUpTo, readBacklog, type Backlog, type BacklogScope } from './delta/backlog.js';
import { PgferryError, isPgferryError } from './errors.js';
import { namesWithRole, type SyncPlan } from './plan.js';
import type { Telemetry } from './telemetry.js';
import type { RunResult } from './types.js';

export interface SyncMetrics {
  /** Runs this instance finished (successful or not). */
  runs: number;
  /** Of those, the runs that failed. */
  failedRuns: number;
  /** Rows upserted and deleted on receivers by this instance's runs. */
  rowsApplied: number;
  /** Conflicts settled by this instance's runs. */
  conflicts: number;
  /** When this instance's last run (successful or not) ended, or null. */
  lastRunAt: Date | null;
  /** Per source: changed keys not yet delivered (whoever runs the sync); null for a source that could not be read. */
  backlog: Record<string, number | null>;
  /** Age of the oldest change not yet delivered on the sources read, in ms (0 when none). */
  lagMs: number;
  /** Per source that could not be read: `CODE: message` (empty when every source answered). */
  errors: Record<string, string>;
}

export interface Metrics {
  syncs: Record<string, SyncMetrics>;
}

export interface WaitForAppliedOptions {
  /** Reject with WAIT_TIMEOUT after this many ms (default 30 s). */
  timeoutMs?: number;
}

const DEFAULT_WAIT_MS = 30_000;
const FIRST_POLL_MS = 20;
const MAX_POLL_MS = 200;

/** What this instance's runs of one sync did (also reported to the meter, if any). */
export class RunCounters {
  runs = 0;
  failedRuns = 0;
  rowsApplied = 0;
  conflicts = 0;
  lastRunAt: Date | null = null;
  readonly #sync: string;
  readonly #telemetry: Telemetry | null;

  constructor(sync: string, telemetry: Telemetry | null) {
    this.#sync = sync;
    this.#telemetry = telemetry;
  }

  completed(result: RunResult): void {
    this.#telemetry?.completed(result);
    this.runs++;
    this.rowsApplied += result.totals.upserted + result.totals.deleted;
    this.conflicts += result.totals.conflicts;
    this.lastRunAt = new Date();
  }

  failed(durationMs: number): void {
    this.#telemetry?.failed(this.#sync, durationMs);
    this.runs++;
    this.failedRuns++;
    this.lastRunAt = new Date();
  }
}

function scopeOf(plan: SyncPlan, schema: string): BacklogScope {
  return { schema, sync: plan.name, cascade: plan.config.cascade, relations: plan.relations };
}

/** The backlog on one source, or why it could not be read within `timeoutMs`. */
async function backlogOrError(db: Database, scope: BacklogScope, timeoutMs: number): Promise<Backlog | { error: string }> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new PgferryError('CONNECTION_FAILED', `Database "${db.name}" (${db.where}) did not answer within ${timeoutMs} ms.`, { database: db.name, transient: true })),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([readBacklog(db, scope), late]);
  } catch (err) {
    const e = db.wrap(err);
    return { error: isPgferryError(e) ? `${e.code}: ${e.message}` : `RUN_FAILED: ${db.redact(String((e as Error)?.message ?? e))}` };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The metrics of one sync: the counters, and the backlog read on each source (in parallel). A
 * source that fails or does not answer within `timeoutMs` has a null backlog and an entry in
 * `errors`; the others are reported all the same.
 */
export async function syncMetrics(
  plan: SyncPlan,
  counters: RunCounters,
  dbs: ReadonlyMap<string, Database>,
  schema: string,
  timeoutMs: number,
): Promise<SyncMetrics> {
  const sources = namesWithRole(plan, 'source');
  const scope = scopeOf(plan, schema);
  const read = await Promise.all(sources.map((name) => backlogOrError(dbs.get(name)!, scope, timeoutMs)));
  const errors: Record<string, string> = {};
  const backlog: Record<string, number | null> = {};
  let lagMs = 0;
  sources.forEach((name, i) => {
    const r = read[i]!;
    if ('error' in r) {
      errors[name] = r.error;
      backlog[name] = null;
    } else {
      backlog[name] = r.keys;
      lagMs = Math.max(lagMs, r.lagMs);
    }
  });
  return {
    runs: counters.runs,
    failedRuns: counters.failedRuns,
    rowsApplied: counters.rowsApplied,
    conflicts: counters.conflicts,
    lastRunAt: counters.lastRunAt,
    backlog,
    lagMs,
    errors,
  };
}

/** The metrics of every sync (a source that cannot be read is reported in the sync's `errors`). */
export async function metricsOf(
  plans: SyncPlan[],
  counters: ReadonlyMap<string, RunCounters>,
  dbs: ReadonlyMap<string, Database>,
  schema: string,
  timeoutMs: number,
): Promise<Metrics> {
  const entries = await Promise.all(plans.map(async (plan) => [plan.name, await syncMetrics(plan, counters.get(plan.name)!, dbs, schema, timeoutMs)] as const));
  return { syncs: Object.fromEntries(entries) };
}

/**
 * Resolves once every change committed on `database` before the call is delivered by every
 * sync where it is a source; polls with a short, growing interval. UNKNOWN_DATABASE for a
 * name that was not added.
 */
export async function waitForApplied(
  dbs: ReadonlyMap<string, Database>,
  database: string,
  allPlans: SyncPlan[],
  schema: string,
  options: WaitForAppliedOptions,
): Promise<void> {
  const db = dbs.get(database);
  if (!db) {
    throw new PgferryError('UNKNOWN_DATABASE', `There is no database "${database}". Known databases: ${[...dbs.keys()].join(', ') || '(none)'}.`, { database });
  }
  const plans = allPlans.filter((p) => p.databases.some((d) => d.name === database && d.role === 'source'));
  if (plans.length === 0) return;
  const timeoutMs = options.timeoutMs ?? DEFAULT_WAIT_MS;
  const deadline = Date.now() + timeoutMs;
  const snapshot = await currentSnapshot(db);
  let behind = plans;
  for (let pause = FIRST_POLL_MS; ; pause = Math.min(MAX_POLL_MS, pause * 2)) {
    const done = await Promise.all(behind.map((p) => deliveredUpTo(db, scopeOf(p, schema), snapshot)));
    behind = behind.filter((_, i) => !done[i]);
    if (behind.length === 0) return;
    const left = deadline - Date.now();
    if (left <= 0) {
      const names = behind.map((p) => `"${p.name}"`).join(', ');
      throw new PgferryError(
        'WAIT_TIMEOUT',
        `Changes committed on database "${db.name}" were not applied everywhere within ${timeoutMs} ms: sync(s) ${names} still behind.`,
        { database: db.name, ...(behind.length === 1 && { sync: behind[0]!.name }) },
      );
    }
    await new Promise<void>((resolve) => setTimeout(resolve, Math.min(pause, left)));
  }
}
