/**
 * Conflict strategies are pure decisions: which source's state wins a key changed on several
 * sources, or skip, abort, or ask the application's resolver.
 */
import { describe, expect, it } from 'vitest';
import { decide, strategyFor, type Contender } from '../../src/conflict/strategies.js';
import type { ConflictStrategy, SimpleStrategy } from '../../src/types.js';

/** Databases of the sync in their configured order. */
const ORDER = ['a', 'b', 'c'];
/** 2024-01-01 00:00:00 UTC in microseconds since the epoch. */
const T0 = 1_704_067_200_000_000;

/** A source that last changed the key `micros` microseconds after T0. */
function changed(db: string, micros: number): Contender {
  const at = T0 + micros;
  return { db, changedAt: new Date(Math.floor(at / 1000)), micros: at };
}

const winner = (db: string) => ({ kind: 'winner', db });

describe("'latest'", () => {
  it('the newest change wins, wherever the source stands in the order', () => {
    expect(decide('latest', [changed('a', 100), changed('b', 300), changed('c', 200)], ORDER)).toEqual(winner('b'));
    expect(decide('latest', [changed('c', 300), changed('a', 100)], ORDER)).toEqual(winner('c'));
  });

  it('a tie goes to the database listed first in the sync, not the first contender', () => {
    const tie = [changed('c', 500), changed('b', 500)];
    expect(decide('latest', tie, ORDER)).toEqual(winner('b'));
    expect(decide('latest', tie, ['c', 'b', 'a'])).toEqual(winner('c'));
  });

  it('compares microseconds: two changes in the same millisecond are still ordered', () => {
    const earlier = changed('a', 1_001);
    const later = changed('b', 1_002);
    expect(earlier.changedAt.getTime()).toBe(later.changedAt.getTime());
    expect(decide('latest', [earlier, later], ORDER)).toEqual(winner('b'));
    expect(decide('latest', [changed('a', 1_002), changed('b', 1_001)], ORDER)).toEqual(winner('a'));
  });
});

describe("'abort', 'skip' and custom resolvers", () => {
  const contenders = [changed('a', 1), changed('b', 2)];

  it.each([
    ['abort', { kind: 'abort' }],
    ['skip', { kind: 'skip' }],
  ] as const)("'%s' decides %o whoever changed the key", (strategy, decision) => {
    expect(decide(strategy, contenders, ORDER)).toEqual(decision);
    expect(decide(strategy, [changed('c', 9), changed('a', 0)], ORDER)).toEqual(decision);
  });

  it('a function leaves the decision to the application (custom), without calling it', () => {
    let called = false;
    const resolver = () => {
      called = true;
      return 'skip' as const;
    };
    expect(decide(resolver, contenders, ORDER)).toEqual({ kind: 'custom' });
    expect(called).toBe(false);
  });
});

describe("'random'", () => {
  // Contenders given out of order: the pick is by position in the sync's database order.
  const contenders = [changed('c', 1), changed('a', 2), changed('b', 3)];

  it.each([
    [0, 'a'],
    [0.34, 'b'],
    [0.5, 'b'],
    [0.67, 'c'],
    [0.999_999, 'c'],
  ])('random() = %d picks %s', (r, db) => {
    expect(decide('random', contenders, ORDER, () => r)).toEqual(winner(db));
  });

  it('picks among the contenders only, and never fails even when random() returns 1', () => {
    const two = [changed('c', 1), changed('a', 2)];
    for (const r of [0, 0.25, 0.5, 0.75, 0.999_999, 1]) {
      const d = decide('random', two, ORDER, () => r);
      expect(d.kind).toBe('winner');
      expect(['a', 'c']).toContain((d as { db: string }).db);
    }
  });

  it('uses Math.random when no random is given', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) seen.add((decide('random', contenders, ORDER) as { db: string }).db);
    expect([...seen].sort()).toEqual(['a', 'b', 'c']);
  });
});

describe('precedence lists', () => {
  it('the first listed database that changed the key wins, whatever the sync order and the times', () => {
    const list = ['c', 'a', 'b'];
    expect(decide(list, [changed('a', 9), changed('b', 1), changed('c', 0)], ORDER)).toEqual(winner('c'));
    expect(decide(list, [changed('b', 9), changed('a', 1)], ORDER)).toEqual(winner('a'));
    expect(decide(['b', 'a'], [changed('a', 9), changed('b', 1)], ORDER)).toEqual(winner('b'));
  });

  it("falls back to 'latest' when no listed database changed the key", () => {
    expect(decide(['c'], [changed('a', 1), changed('b', 2)], ORDER)).toEqual(winner('b'));
    expect(decide(['c'], [changed('a', 2), changed('b', 1)], ORDER)).toEqual(winner('a'));
    // ... including its tie rule.
    expect(decide([], [changed('b', 5), changed('a', 5)], ORDER)).toEqual(winner('a'));
  });
});

describe('strategyFor', () => {
  const resolver = () => 'skip' as const;

  it.each<[string, SimpleStrategy]>([
    ['latest', 'latest'],
    ['abort', 'abort'],
    ['a list', ['b', 'a']],
    ['a function', resolver],
  ])('a sync-wide strategy (%s) applies to every table as it is', (_, strategy) => {
    for (const table of ['public.t', 'sales.orders']) expect(strategyFor(strategy, table)).toBe(strategy);
  });

  it('per table: a listed table gets its own strategy, any other the default', () => {
    const list = ['b', 'a'];
    const perTable: ConflictStrategy = { default: 'skip', tables: { 'public.orders': list, 'sales.items': resolver } };
    expect(strategyFor(perTable, 'public.orders')).toBe(list);
    expect(strategyFor(perTable, 'sales.items')).toBe(resolver);
    expect(strategyFor(perTable, 'public.customers')).toBe('skip');
    // Tables are named `schema.table`, unquoted, exactly as results name them.
    expect(strategyFor(perTable, 'sales.orders')).toBe('skip');
  });

  it("per table without a default: unlisted tables get 'latest'", () => {
    const perTable: ConflictStrategy = { tables: { 'public.orders': 'abort' } };
    expect(strategyFor(perTable, 'public.orders')).toBe('abort');
    expect(strategyFor(perTable, 'public.other')).toBe('latest');
  });
});
