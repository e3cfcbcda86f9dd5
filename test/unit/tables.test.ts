/**
 * What a run does with the catalog's answers, without a catalog: the order tables are applied in
 * (referenced tables first) and the columns that travel.
 */
import { describe, expect, it } from 'vitest';
import { copiedColumns, orderByDependencies, type ColumnInfo, type TableInfo } from '../../src/catalog/tables.js';

interface Rel {
  schema: string;
  name: string;
  references: string[];
}

/** `schema.name` (public when no schema) referencing `refs` (display names). */
function rel(display: string, ...refs: string[]): Rel {
  const [schema, name] = display.includes('.') ? display.split('.') : ['public', display];
  return { schema: schema!, name: name!, references: refs };
}

const names = (rels: Rel[]) => rels.map((r) => `${r.schema}.${r.name}`);

describe('orderByDependencies', () => {
  it('puts a referenced table before the table that references it', () => {
    expect(names(orderByDependencies([rel('child', 'public.parent'), rel('parent')]))).toEqual(['public.parent', 'public.child']);
  });

  it('follows chains, and keeps the configured order where nothing forces another', () => {
    expect(names(orderByDependencies([rel('c', 'public.b'), rel('b', 'public.a'), rel('a')]))).toEqual(['public.a', 'public.b', 'public.c']);
    expect(names(orderByDependencies([rel('x'), rel('y'), rel('z')]))).toEqual(['public.x', 'public.y', 'public.z']);
    const shop = [
      rel('orders', 'public.customers'),
      rel('items', 'public.orders', 'public.products'),
      rel('customers'),
      rel('products'),
    ];
    expect(names(orderByDependencies(shop))).toEqual(['public.customers', 'public.orders', 'public.products', 'public.items']);
  });

  it('matches references by schema and name', () => {
    const rels = [rel('sales.orders', 'public.customers'), rel('sales.customers'), rel('public.customers')];
    expect(names(orderByDependencies(rels))).toEqual(['public.customers', 'sales.orders', 'sales.customers']);
  });

  it('ignores references to tables outside the list', () => {
    const rels = [rel('orders', 'public.customers', 'audit.log'), rel('notes')];
    expect(names(orderByDependencies(rels))).toEqual(['public.orders', 'public.notes']);
  });

  it('a cycle does not loop: every table comes out once, cut where the configured order first enters it', () => {
    // a → b → a: visiting a first, b (which a references) goes first; b's reference back to a is dropped.
    expect(names(orderByDependencies([rel('a', 'public.b'), rel('b', 'public.a')]))).toEqual(['public.b', 'public.a']);
    expect(names(orderByDependencies([rel('b', 'public.a'), rel('a', 'public.b')]))).toEqual(['public.a', 'public.b']);
    // A table referencing a member of the cycle still comes after it; a table on its own keeps its place.
    const rels = [rel('x'), rel('child', 'public.a'), rel('a', 'public.b'), rel('b', 'public.a')];
    expect(names(orderByDependencies(rels))).toEqual(['public.x', 'public.b', 'public.a', 'public.child']);
    const three = [rel('a', 'public.c'), rel('b', 'public.a'), rel('c', 'public.b')];
    expect(names(orderByDependencies(three)).sort()).toEqual(['public.a', 'public.b', 'public.c']);
  });

  it('returns the same objects in a new array and leaves the input as it was', () => {
    const child = { ...rel('child', 'public.parent'), extra: 1 };
    const parent = { ...rel('parent'), extra: 2 };
    const input = [child, parent];
    const out = orderByDependencies(input);
    expect(out).not.toBe(input);
    expect(input).toEqual([child, parent]);
    expect(out[0]).toBe(parent);
    expect(out[1]).toBe(child);
    expect(out[0]!.extra).toBe(2);
  });
});

describe('copiedColumns', () => {
  const col = (name: string, more: Partial<ColumnInfo> = {}): ColumnInfo => ({ name, type: 'text', typeOid: 25, elemOid: 0, collation: null, deterministic: true, notNull: false, generated: false, identity: '', ...more });
  const table = (columns: ColumnInfo[]): TableInfo => ({ schema: 'public', name: 't', kind: 'table', oid: 1, owner: 'app', ownedByMe: true, columns, key: ['id'], keyOps: ['OPERATOR(pg_catalog.=)'], keyOpsDefault: true, references: [], foreignKeys: [] });

  it('every column in table order except stored generated ones; identity columns travel', () => {
    const t = table([
      col('id', { type: 'integer', notNull: true, identity: 'a' }),
      col('txt'),
      col('gen', { generated: true }),
      col('Odd "Name"'),
      col('big', { type: 'bigint', identity: 'd' }),
      col('gen2', { generated: true }),
    ]);
    expect(copiedColumns(t)).toEqual(['id', 'txt', 'Odd "Name"', 'big']);
  });

  it('a table of generated columns only copies none; one without any copies all', () => {
    expect(copiedColumns(table([col('g', { generated: true })]))).toEqual([]);
    expect(copiedColumns(table([col('b'), col('a')]))).toEqual(['b', 'a']);
  });
});
