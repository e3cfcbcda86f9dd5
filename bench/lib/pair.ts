/** A source and a target database (on the two servers) with a replicator over them: dropped and stopped afterwards. */
import { Replicator } from '../../src/index.js';
import type { BenchContext } from './context.js';
import { createDb, type BenchDb } from './pg.js';

export async function withPair<T>(ctx: BenchContext, prefix: string, fn: (src: BenchDb, tgt: BenchDb, rep: Replicator) => Promise<T>): Promise<T> {
  const src = await createDb(ctx.a, `${prefix}_src`);
  const tgt = await createDb(ctx.b, `${prefix}_tgt`);
  const rep = new Replicator();
  try {
    await rep.addDatabase('src', src.url);
    await rep.addDatabase('tgt', tgt.url);
    return await fn(src, tgt, rep);
  } finally {
    await rep.stop().catch(() => undefined);
    await src.drop().catch(() => undefined);
    await tgt.drop().catch(() => undefined);
  }
}
