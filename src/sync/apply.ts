/**
 * Phase 4, apply: the changes go to every receiver in chunks of at most `chunkSize` keys per
 * table and source. Each chunk is one transaction per receiver, committed together; the
 * sources' watermarks move only after the last chunk (phase 6).
 */
import type { KeyRange } from '../apply/applier.js';
import { Chunk } from './chunk.js';
import type { Run } from './context.js';

export async function applyChunks(run: Run): Promise<void> {
  if (!run.incremental || !run.hasChanges) return;
  const size = run.plan.config.chunkSize;
  const chunks = Math.max(1, ...run.tables.map((t) => Math.ceil(t.span / size)));
  for (let c = 0; c < chunks; c++) {
    const range: KeyRange | undefined = chunks > 1 ? { from: c * size, to: (c + 1) * size } : undefined;
    const chunk = new Chunk(run, c === 0, range);
    for (const name of run.receivers) await chunk.applyTo(name);
    await chunk.commit();
  }
  run.chunks = chunks;
}
