/**
 * Phase 5, full copies to 'fullcopy' databases: every table, whole, from the first source's
 * snapshot. One transaction per table, or one for the run when the tables reference each
 * other (so foreign keys hold); readers of the receiver see old contents or new, never half.
 */
import { checkReceivers } from '../apply/applier.js';
import { passFenceIfInstalled } from '../apply/fence.js';
import { copyTable, emptyTable } from '../apply/fullcopy.js';
import { binaryCompatible, estimateRows } from '../catalog/tables.js';
import type { Session } from '../db/session.js';
import { APPLIED_BY_SETTING } from '../sql/names.js';
import type { Run, RunTable } from './context.js';
import { copyAllToForeign } from './foreign.js';
import { copyThroughTransform, rowFilter } from './partial.js';

/** How often copy:progress reports during a copy. */
const PROGRESS_EVERY_MS = 250;

export async function copyToFullcopies(run: Run): Promise<void> {
  for (const name of run.fullcopies) await (run.isForeign(name) ? copyAllToForeign(run, name) : copyAllTo(run, name));
}

async function copyAllTo(run: Run, name: string): Promise<void> {
  const source = run.firstRead.session;
  if (!run.linked) {
    for (const t of run.tables) {
      const w = await begin(run, name);
      t.receivers.set(name, (await checkReceivers(w, [t], source.name))[0]!);
      await emptyTable(w, t.receivers.get(name)!);
      t.result.upserted += await copyInto(run, source, w, t);
      await commit(run, w);
    }
    return;
  }
  // Tables that reference each other: one transaction, emptied children first, filled parents first.
  const w = await begin(run, name);
  const infos = await checkReceivers(w, run.tables, source.name);
  for (const [i, t] of run.tables.entries()) t.receivers.set(name, infos[i]!);
  for (const t of [...run.tables].reverse()) await emptyTable(w, t.receivers.get(name)!);
  for (const t of run.tables) t.result.upserted += await copyInto(run, source, w, t);
  await commit(run, w);
}

async function begin(run: Run, name: string): Promise<Session> {
  const w = await run.open(name);
  await w.begin('read committed', { [APPLIED_BY_SETTING]: run.sync });
  return w;
}

async function commit(run: Run, w: Session): Promise<void> {
  await passFenceIfInstalled(w, run.deps.schema, run.sync, run.generation);
  await w.commit();
  await w.close();
}

/** Copies every row of `t` (that its filter lets through, and through its transform) into the (emptied) receiver table, reporting progress. */
export async function copyInto(run: Run, source: Session, receiver: Session, t: RunTable): Promise<number> {
  const transformed = await copyThroughTransform(run, source, receiver, t);
  if (transformed !== undefined) return transformed;
  const binary = binaryCompatible(t.info, t.receivers.get(receiver.name)!, t.columns);
  const { emit } = run.deps;
  const wants = emit.wants('copy:progress');
  const totalEstimate = wants ? await estimateRows(source.client, t.info) : -1;
  const where = rowFilter(t);
  return copyTable(source, receiver, t.info, t.columns, {
    binary,
    ...(where && { where }),
    ...(wants && {
      progress: {
        db: receiver.db,
        everyMs: PROGRESS_EVERY_MS,
        report: (p) => emit('copy:progress', { sync: run.sync, table: t.display, target: receiver.name, rows: p.rows, totalEstimate, done: p.done }),
      },
    }),
  });
}
