/**
 * Phase 2, plan keys: decide which targets get a whole table this run (onetimecopy: once in
 * the sync's life, recorded by the target's fence, or when a kick asks for it), then
 * collect each table's changed keys on every source into its key table, apply TRUNCATEs (only
 * changes made after the newest one survive it) and index key tables that span several chunks.
 */
import { hasDelivered } from '../apply/fence.js';
import { isEmpty } from '../apply/fullcopy.js';
import { collectKeys, dropKeysBefore, indexKeyTable, lastTruncate } from '../delta/reader.js';
import { namesWithRole } from '../plan.js';
import type { Run } from './context.js';

export async function planFirstCopies(run: Run): Promise<void> {
  const forced = run.onetimecopy;
  const mode = forced ?? run.plan.config.onetimecopy;
  if (mode === 'never' || !run.incremental) return;
  for (const name of namesWithRole(run.plan, 'target')) {
    const probe = await run.open(name);
    await probe.begin();
    if (forced || !(await hasDelivered(probe, run.deps.schema, run.sync))) {
      for (const t of run.tables) if (mode === 'always' || (await isEmpty(probe, t.info))) t.copyInto.add(name);
    }
    await probe.close();
  }
}

export async function collectChanges(run: Run): Promise<void> {
  if (!run.incremental) return;
  for (const t of run.tables) {
    let newest: { db: string; micros: number } | null = null;
    for (const [name, read] of run.reads) {
      const n = await collectKeys(read, run.scope, t.info, t.temp);
      t.counts.set(name, n);
      t.span = Math.max(t.span, n);
      const tr = await lastTruncate(read, run.scope, t.info);
      if (tr && (!newest || tr.micros > newest.micros)) newest = { db: name, micros: tr.micros };
    }
    if (newest) {
      // Only changes made after the newest TRUNCATE survive it.
      t.truncate = newest;
      for (const [name, read] of run.reads) t.counts.set(name, await dropKeysBefore(read, t.temp, newest.micros));
    }
    for (const [name, n] of t.counts) if (n > run.plan.config.chunkSize) await indexKeyTable(run.reads.get(name)!, t.temp);
    for (const n of t.counts.values()) run.changes += n;
    if (t.truncate) run.changes++;
  }
}
