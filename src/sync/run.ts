/**
 * One run of one sync, end to end, as a pipeline of phases over one Run. A failure anywhere
 * rolls back every write of the run and leaves the watermarks (so the pending changes) where
 * they were.
 */
import createDebug from 'debug';
import type { SyncPlan } from '../plan.js';
import type { RunResult } from '../types.js';
import { applyChunks } from './apply.js';
import { Run, type RunContext, type RunDeps } from './context.js';
import { copyToFullcopies } from './fullcopy.js';
import { collectChanges, planFirstCopies } from './keys.js';
import { readSources } from './read.js';
import { syncSequences } from './sequences.js';
import { settleConflicts } from './settle.js';
import { commitWatermarks } from './watermarks.js';

export type { RunDeps } from './context.js';

const debug = createDebug('pgferry:run');

/** Attempts of one run whose writes on a source deadlock with an application's there. */
const MAX_ATTEMPTS = 3;
/** SQLSTATE deadlock_detected. */
const DEADLOCK = '40P01';

/**
 * Runs the sync once. Resolves when every receiver and every watermark committed. A run whose
 * writes on a source (multi-master: they hold row locks until the run commits) deadlocked
 * with an application's transaction there starts again, a few times.
 */
export async function runSync(plan: SyncPlan, deps: RunDeps, ctx: RunContext): Promise<RunResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await runOnce(plan, deps, ctx);
    } catch (err) {
      const cause = (err as { cause?: { code?: string; database?: string } }).cause;
      const onSource = plan.databases.some((d) => d.role === 'source' && d.name === cause?.database);
      if (attempt >= MAX_ATTEMPTS || deps.signal?.aborted || cause?.code !== DEADLOCK || !onSource) throw err;
      debug('%s run %s: attempt %d deadlocked with a write on %s; again', plan.name, ctx.runId, attempt, cause.database);
    }
  }
}

async function runOnce(plan: SyncPlan, deps: RunDeps, ctx: RunContext): Promise<RunResult> {
  const run = new Run(plan, deps, ctx);
  try {
    await readSources(run); //       1. a snapshot per source; tables from the catalog
    await planFirstCopies(run); //   2. which receivers get whole tables (onetimecopy)
    await collectChanges(run); //       changed keys and TRUNCATEs per table and source
    await settleConflicts(run); //   3. keys changed on several sources
    await applyChunks(run); //       4. staged rows into every receiver, chunk by chunk
    void run.releaseTargets(); //       (target transactions opened early that no chunk took)
    await copyToFullcopies(run); //  5. whole tables into 'fullcopy' databases
    await commitWatermarks(run); //  6. the changes read are delivered
    await syncSequences(run); //     7. sequences, furthest value wins
    const result = run.result();
    debug('%s run %s: %s in %dms', run.sync, run.runId, result.status, result.durationMs);
    await run.close();
    for (const task of run.afterwards) deps.background?.(task);
    return result;
  } catch (err) {
    // The failure may come from DDL the catalog stamps missed: read the tables afresh next time.
    for (const d of plan.databases) deps.dbs.get(d.name)?.catalog.clear();
    throw run.failure(err);
  } finally {
    await run.close();
  }
}
