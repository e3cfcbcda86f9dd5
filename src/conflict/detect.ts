/**
 * Finds keys changed on two or more sources by merging the sources' changed keys, each read
 * in the same order (the key's text form, byte order). Memory holds the conflicts, not every
 * changed key. No I/O of its own: the caller gives the ordered streams.
 */
import type { RowKey } from '../types.js';
import type { Contender } from './strategies.js';

/** One source's changed keys in key order. */
export interface OrderedKeys {
  readonly db: string;
  peek(): Promise<{ keyText: string; key: RowKey; changedAt: Date; micros: number } | undefined>;
  take(): void;
}

export interface FoundConflict {
  /** The key's text form (`ROW(k...)::text`), to find it again in SQL. */
  keyText: string;
  key: RowKey;
  contenders: Contender[];
}

/** Keys present in two or more of `sources`, in key order. */
export async function findConflicts(sources: OrderedKeys[]): Promise<FoundConflict[]> {
  const found: FoundConflict[] = [];
  for (;;) {
    let min: Buffer | undefined;
    const heads: { s: OrderedKeys; k: NonNullable<Awaited<ReturnType<OrderedKeys['peek']>>>; kb: Buffer }[] = [];
    for (const s of sources) {
      const k = await s.peek();
      if (!k) continue;
      const kb = Buffer.from(k.keyText, 'utf8');
      heads.push({ s, k, kb });
      if (!min || Buffer.compare(kb, min) < 0) min = kb;
    }
    if (!min) return found;
    const same = heads.filter((h) => Buffer.compare(h.kb, min!) === 0);
    for (const h of same) h.s.take();
    if (same.length > 1) {
      const first = same[0]!.k;
      found.push({
        keyText: first.keyText,
        key: first.key,
        contenders: same.map((h) => ({ db: h.s.db, changedAt: h.k.changedAt, micros: h.k.micros })),
      });
    }
  }
}
