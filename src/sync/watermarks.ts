/**
 * Phase 6, commit watermarks: every receiver committed, so the changes read are delivered;
 * each source's watermark moves to its read snapshot and its read transaction commits. Then,
 * off the run's critical path, deltas every sync has delivered are pruned.
 */
import createDebug from 'debug';
import { Session } from '../db/session.js';
import { advanceWatermark, pruneDeltas } from '../delta/reader.js';
import { displayName } from '../sql/ident.js';
import type { Run } from './context.js';

const debug = createDebug('pgferry:run');

export async function commitWatermarks(run: Run): Promise<void> {
  if (run.incremental) {
    for (const read of run.reads.values()) await advanceWatermark(read, run.deps.schema, run.sync);
  }
  for (const read of run.reads.values()) await read.session.commit();
  if (run.incremental) schedulePrune(run);
}

/** Deletes delivered deltas after the run, so delta tables stay small in steady state. */
function schedulePrune(run: Run): void {
  const { background, dbs, schema } = run.deps;
  if (!background) return;
  const targets = [...run.reads.keys()].map((name) => dbs.get(name)!);
  const infos = run.tables.map((t) => t.info);
  background(async () => {
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
