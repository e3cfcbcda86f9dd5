/**
 * Knowing it is right, for the face: counters of this instance's runs, metrics per sync (the
 * counters plus backlog and lag read from the sources), and waiting until the changes
 * committed on a database were applied everywhere (read-your-writes).
 */
import type { Database } from './db/database.js';
import { currentSnapshot, deliveredUpTo, readBacklog, type BacklogScope } from './delta/backlog.js';
import { PgferryError } from './errors.js';
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
  /** Per source: changed keys not yet delivered (whoever runs the sync). */
  backlog: Record<string, number>;
  /** Age of the oldest change not yet delivered on any source, in ms (0 when none). */
  lagMs: number;
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

/** The metrics of one sync: the counters, and the backlog read on each source (in parallel). */
export async function syncMetrics(plan: SyncPlan, counters: RunCounters, dbs: ReadonlyMap<string, Database>, schema: string): Promise<SyncMetrics> {
  const sources = namesWithRole(plan, 'source');
  const scope = scopeOf(plan, schema);
  const backlogs = await Promise.all(sources.map((name) => readBacklog(dbs.get(name)!, scope)));
  return {
    runs: counters.runs,
    failedRuns: counters.failedRuns,
    rowsApplied: counters.rowsApplied,
    conflicts: counters.conflicts,
    lastRunAt: counters.lastRunAt,
    backlog: Object.fromEntries(sources.map((name, i) => [name, backlogs[i]!.keys])),
    lagMs: Math.max(0, ...backlogs.map((b) => b.lagMs)),
  };
}

/** The metrics of every sync. */
export async function metricsOf(
  plans: SyncPlan[],
  counters: ReadonlyMap<string, RunCounters>,
  dbs: ReadonlyMap<string, Database>,
  schema: string,
): Promise<Metrics> {
  const entries = await Promise.all(plans.map(async (plan) => [plan.name, await syncMetrics(plan, counters.get(plan.name)!, dbs, schema)] as const));
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
