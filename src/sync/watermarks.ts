/**
 * Phase 6, commit watermarks: every target committed, so the changes read are delivered. With
 * one source, its watermark moves to its read snapshot in its read transaction. With several,
 * each source's read transaction also holds the rows the run wrote there: all of them commit
 * first, and only then does any watermark move (each in a short transaction of its own).
 * Afterwards, off the run's critical path, deltas every sync has delivered are pruned.
 */
import createDebug from 'debug';
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
    await commitWatermark(reads[0]!, run.deps.schema, run.sync);
  } else {
    for (const read of reads) await read.session.commit();
    for (const read of reads) {
      await read.session.begin();
      await commitWatermark(read, run.deps.schema, run.sync, true);
    }
  }
  schedulePrune(run);
}

/** Deletes delivered deltas after the run, so delta tables stay small in steady state. */
function schedulePrune(run: Run): void {
  const { dbs, schema } = run.deps;
  const targets = [...run.reads.keys()].map((name) => dbs.get(name)!);
  const infos = run.tables.map((t) => t.info);
  run.afterwards.push(async () => {
    for (const db of targets) {
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
  });
}
