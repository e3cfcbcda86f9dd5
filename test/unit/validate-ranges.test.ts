/**
 * The pure parts of validate(): how ranges are cut and batched, the SQL of a batch of ranges,
 * and which database a repair keeps.
 */
import { describe, expect, it } from 'vitest';
import type { TableInfo } from '../../src/catalog/tables.js';
import { byRows } from '../../src/sync/compare.js';
import { cut, rangeQuery } from '../../src/sync/ranges.js';
import { winnerOf } from '../../src/sync/repair.js';
import type { SyncPlan } from '../../src/plan.js';

const table = {
  schema: 'public',
  name: 'T "q"',
  key: ['a', 'b'],
  keyOps: ['OPERATOR(pg_catalog.=)', 'OPERATOR(pg_catalog.=)'],
  columns: [
    { name: 'a', type: 'integer' },
    { name: 'b', type: 'text' },
  ],
} as unknown as TableInfo;

describe('cut', () => {
  it('cuts a range at its points into pieces that cover it, ends included', () => {
    expect(cut({ lo: null, hi: null }, [['1'], ['5']])).toEqual([
      { lo: null, hi: ['1'] },
      { lo: ['1'], hi: ['5'] },
      { lo: ['5'], hi: null },
    ]);
    expect(cut({ lo: ['0'], hi: ['9'] }, [])).toEqual([{ lo: ['0'], hi: ['9'] }]);
  });
});

describe('byRows', () => {
  it('groups consecutive items up to a number of rows, a larger item alone', () => {
    const items = [10, 10, 5, 30, 1, 1].map((rows, i) => ({ rows, i }));
    expect(byRows(items, 25).map((g) => g.map((x) => x.i))).toEqual([[0, 1, 2], [3], [4, 5]]);
    expect(byRows([], 25)).toEqual([]);
  });
});

describe('rangeQuery', () => {
  it('sends bounds as text parameters, cast on the server, one branch per shape of range', () => {
    const q = rangeQuery(table, cut({ lo: null, hi: null }, [['1', 'x'], ['2', "it's"]]), (where) => `SELECT 1 FROM t WHERE ${where}`);
    expect(q.values).toEqual([[1], ['1'], ['x'], ['2'], ["it's"], [0], ['1'], ['x'], [2], ['2'], ["it's"]]);
    expect(q.text).not.toContain("it's");
    expect(q.text).toContain(`(t."a", t."b") > ((r.l0)::integer, (r.l1)::text) AND (t."a", t."b") <= ((r.h0)::integer, (r.h1)::text)`);
    expect(q.text.split('UNION ALL')).toHaveLength(3);
  });
});

describe('winnerOf', () => {
  const plan = (conflictStrategy: unknown): SyncPlan =>
    ({ name: 's', config: { conflictStrategy }, relations: [], databases: [{ name: 'a', role: 'source' }, { name: 'b', role: 'source' }, { name: 'c', role: 'target' }] }) as unknown as SyncPlan;

  it('is the first of a precedence list (per table where the strategy is per table), else the first source', () => {
    expect(winnerOf(plan(['b', 'a']), 'public.t')).toBe('b');
    expect(winnerOf(plan('latest'), 'public.t')).toBe('a');
    expect(winnerOf(plan(() => 'skip'), 'public.t')).toBe('a');
    expect(winnerOf(plan({ default: ['b'], tables: { 'public.u': ['a', 'b'] } }), 'public.u')).toBe('a');
    expect(winnerOf(plan({ default: ['b'], tables: { 'public.u': ['a', 'b'] } }), 'public.t')).toBe('b');
    expect(winnerOf(plan({ default: 'latest', tables: {} }), 'public.t')).toBe('a');
  });
});
