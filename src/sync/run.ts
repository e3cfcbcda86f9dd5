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

/** Runs the sync once. Resolves when every receiver and every watermark committed. */
export async function runSync(plan: SyncPlan, deps: RunDeps, ctx: RunContext): Promise<RunResult> {
  const run = new Run(plan, deps, ctx);
  try {
    await readSources(run); //       1. a snapshot per source; tables from the catalog
    await planFirstCopies(run); //   2. which receivers get whole tables (onetimecopy)
    await collectChanges(run); //       changed keys and TRUNCATEs per table and source
    await settleConflicts(run); //   3. keys changed on several sources
    await applyChunks(run); //       4. staged rows into every receiver, chunk by chunk
    await copyToFullcopies(run); //  5. whole tables into 'fullcopy' databases
    await commitWatermarks(run); //  6. the changes read are delivered
    await syncSequences(run); //     7. sequences, furthest value wins
    const result = run.result();
    debug('%s run %s: %s in %dms', run.sync, run.runId, result.status, result.durationMs);
    return result;
  } catch (err) {
    throw run.failure(err);
  } finally {
    await run.close();
  }
}
