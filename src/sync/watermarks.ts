/**
 * Phase 6, commit watermarks: every target committed, so the changes read are delivered. With
 * one source, its watermark moves to its read snapshot in its read transaction. With several,
 * each source's read transaction also holds the rows the run wrote there: all of them commit
 * first, and only then does any watermark move (each in a short transaction of its own).
 * Afterwards, off the run's critical path, deltas every sync has delivered are pruned.
 */
import createDebug from 'debug';
import type { Database } from '../db/database.js';
import { Session } from '../db/session.js';
import { commitWatermark, pruneDeltas } from '../delta/reader.js';
import { displayName } from '../sql/ident.js';
import type { Run } from './context.js';

const debug = createDebug('pgferry:run');

export async function commitWatermarks(run: Run): Promise<void> {
  const reads = [...run.reads.values()];
  if (!run.incremental) {
    for (const read of reads) await read.session.commit();
    return;
  }
  if (reads.length === 1) {
    // The run's last use of its source, unless sequences follow: its lock goes with the commit.
    const unlock = !run.relations.some((r) => r.kind === 'sequence');
    await commitWatermark(reads[0]!, run.deps.schema, run.sync, { unlock });
  } else {
    for (const read of reads) await read.session.commit();
    for (const read of reads) {
      await read.session.begin();
      await commitWatermark(read, run.deps.schema, run.sync, { durable: true });
    }
  }
  schedulePrune(run);
}

/**
 * Under steady writes a background run follows another every few tens of milliseconds, and
 * pruning costs the source a statement per table: background runs prune each source at most
 * this often (the next one due prunes everything delivered by then). Kicks always prune.
 */
const PRUNE_INTERVAL_MS = 1000;
/** When each sync last pruned each database (by this process). */
const lastPrune = new WeakMap<Database, Map<string, number>>();

/** Deletes delivered deltas after the run, so delta tables stay small in steady state. */
function schedulePrune(run: Run): void {
  const { dbs, schema } = run.deps;
  const now = Date.now();
  const due: { db: Database; times: Map<string, number> }[] = [];
  for (const name of run.reads.keys()) {
    const db = dbs.get(name)!;
    let times = lastPrune.get(db);
    if (!times) lastPrune.set(db, (times = new Map()));
    if (run.reason !== 'kick' && now - (times.get(run.sync) ?? 0) < PRUNE_INTERVAL_MS) continue;
    times.set(run.sync, now);
    due.push({ db, times });
  }
  if (due.length === 0) return;
  const infos = run.tables.map((t) => t.info);
  run.afterwards.push(async () => {
    try {
      for (const { db } of due) {
        const s = await Session.open(db);
        try {
          for (const info of infos) {
            await s.begin();
            const n = await pruneDeltas(s, schema, info);
            await s.commit();
            if (n > 0) debug('%s: pruned %d deltas of %s', db.name, n, displayName(info));
          }
        } finally {
          await s.close();
        }
      }
    } catch (err) {
      // Not pruned (all of them, to keep it simple): the next run does it.
      for (const { times } of due) times.delete(run.sync);
      throw err;
    }
  });
}
