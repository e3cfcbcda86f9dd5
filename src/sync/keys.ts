/**
 * Phase 2, plan keys: decide which targets get a whole table this run (onetimecopy: once in
 * the sync's life, recorded by the target's fence, or when a kick asks for it), then
 * collect each table's changed keys on every source into its key table, apply TRUNCATEs and
 * index key tables that span several chunks.
 *
 * A TRUNCATE on a source removes every row that existed before it, everywhere; of that
 * source's own changes, only those made after it survive (one server's clock decides order
 * on that server). Changes made on other sources since the last run survive it: their order
 * against the TRUNCATE would be known only by comparing two servers' clocks, and a skewed
 * clock must not lose a write.
 */
import { collectChanged, dropKeysBefore, indexKeyTable } from '../delta/reader.js';
import { namesWithRole } from '../plan.js';
import type { Run } from './context.js';
import { checkForeign, receiverTable } from './foreign.js';

export async function planFirstCopies(run: Run): Promise<void> {
  const forced = run.onetimecopy;
  const mode = forced ?? run.plan.config.onetimecopy;
  if (mode === 'never' || !run.incremental) return;
  for (const name of namesWithRole(run.plan, 'target')) {
    const r = await run.receiver(name);
    // Receivers that take parsed rows have no staging step to check their tables: now.
    if (!r.capabilities.staged) await checkForeign(run, r);
    await r.begin();
    if (forced || !(await r.delivered(run.sync))) {
      for (const t of run.tables) if (mode === 'always' || (await r.isEmpty(receiverTable(t)))) t.copyInto.add(name);
    }
    await run.release(r);
  }
}

export async function collectChanges(run: Run): Promise<void> {
  if (!run.incremental) return;
  for (const [name, read] of run.reads) {
    const changed = await collectChanged(read, run.scope, run.tables.map((t) => ({ info: t.info, temp: t.temp })));
    for (const [i, t] of run.tables.entries()) {
      const { keys: numbered, truncatedAt } = changed[i]!;
      let n = numbered;
      // Chunks cover key numbers 1..span: the numbers stay when keys are dropped below.
      t.span = Math.max(t.span, numbered);
      if (truncatedAt !== null) {
        t.truncatedOn.add(name);
        n = await dropKeysBefore(read, t.temp, truncatedAt);
      }
      t.counts.set(name, n);
      if (numbered > run.plan.config.chunkSize) await indexKeyTable(read, t.temp);
      run.changes += n;
    }
  }
  for (const t of run.tables) if (t.truncatedOn.size > 0) run.changes++;
}
