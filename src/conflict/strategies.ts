/**
 * Conflict strategies: pure decisions, no I/O. A conflict is a key changed on two or more
 * sources since their last run; a decision names the source whose current state wins, a
 * merged row, or skip.
 */
import type { ConflictStrategy, SimpleStrategy } from '../types.js';

export interface Contender {
  db: string;
  /** Newest change to the key on that source (that server's clock). */
  changedAt: Date;
  /** The same instant in microseconds since the epoch (Date keeps only milliseconds). */
  micros: number;
}

export type Decision = { kind: 'winner'; db: string } | { kind: 'skip' } | { kind: 'abort' } | { kind: 'custom' };

/** The strategy for one table (`schema.table`, unquoted) from the sync's setting. */
export function strategyFor(strategy: ConflictStrategy, table: string): SimpleStrategy {
  if (typeof strategy === 'object' && !Array.isArray(strategy)) {
    return strategy.tables[table] ?? strategy.default ?? 'latest';
  }
  return strategy;
}

/**
 * Decides one conflict. `order` is the order of the sync's databases (ties go to the first).
 * `random` is injectable for tests.
 */
export function decide(strategy: SimpleStrategy, contenders: Contender[], order: string[], random: () => number = Math.random): Decision {
  const rank = (db: string) => order.indexOf(db);
  const byOrder = [...contenders].sort((a, b) => rank(a.db) - rank(b.db));
  if (typeof strategy === 'function') return { kind: 'custom' };
  if (Array.isArray(strategy)) {
    for (const name of strategy) if (byOrder.some((c) => c.db === name)) return { kind: 'winner', db: name };
    return decide('latest', contenders, order, random);
  }
  switch (strategy) {
    case 'abort':
      return { kind: 'abort' };
    case 'skip':
      return { kind: 'skip' };
    case 'random':
      return { kind: 'winner', db: byOrder[Math.floor(random() * byOrder.length) % byOrder.length]!.db };
    case 'latest': {
      let best = byOrder[0]!;
      for (const c of byOrder) if (c.micros > best.micros) best = c;
      return { kind: 'winner', db: best.db };
    }
  }
}
