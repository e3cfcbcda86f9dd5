/**
 * Phase 4, apply: the changes go to every receiver in chunks of at most `chunkSize` keys per
 * table and source. Each chunk is one transaction per receiver (on a source, part of its read
 * transaction), committed together; the sources' watermarks move only after the last chunk
 * (phase 6).
 *
 * Foreign keys between the run's tables hold after every chunk, whatever the chunking: one
 * chunk (the usual case) writes every table in foreign-key order (see chunk.ts). When tables
 * reference each other and a backlog needs several chunks, a child's chunk must not come
 * before its new parent's, nor a parent's delete before its children moved away: the chunks
 * then go table by table, parents first, and the referenced tables' remaining deletes come
 * last, children first.
 */
import type { KeyRange } from '../apply/staging.js';
import { Chunk, type ChunkPlan, type Step } from './chunk.js';
import type { Run, RunTable } from './context.js';

export async function applyChunks(run: Run): Promise<void> {
  if (!run.incremental || !run.hasChanges) return;
  const plans = planChunks(run);
  for (const plan of plans) {
    const chunk = new Chunk(run, plan);
    for (const name of run.receivers) await chunk.applyTo(name);
    await chunk.commit();
  }
  for (const t of run.tables) t.result.upserted += t.merged.length;
  run.chunks = plans.length;
}

/** The chunks of a run, in order. */
export function planChunks(run: Run): ChunkPlan[] {
  const size = run.plan.config.chunkSize;
  const ranges = (span: number): (KeyRange | undefined)[] => {
    const n = Math.ceil(span / size);
    return n <= 1 ? [undefined] : Array.from({ length: n }, (_, c) => ({ from: c * size, to: (c + 1) * size }));
  };
  const steps = (t: RunTable): Step[] => (run.isReferenced(t) ? ['delete-early', 'upsert', 'delete-late'] : ['delete', 'upsert']);
  const spans = Math.max(1, ...run.tables.map((t) => Math.ceil(t.span / size)));
  if (spans <= 1 || !run.linked) {
    return ranges(spans * size).map((range, c) => ({ range, first: c === 0, work: new Map(run.tables.map((t) => [t, new Set(steps(t))])) }));
  }
  const plans: ChunkPlan[] = [];
  for (const t of run.tables) {
    const early = steps(t).filter((s) => s !== 'delete-late');
    for (const range of ranges(Math.max(1, t.span))) plans.push({ range, first: plans.length === 0, work: new Map([[t, new Set(early)]]) });
  }
  for (const t of [...run.tables].reverse()) {
    if (!run.isReferenced(t)) continue;
    for (const range of ranges(Math.max(1, t.span))) plans.push({ range, first: false, work: new Map([[t, new Set<Step>(['delete-late'])]]) });
  }
  return plans;
}
