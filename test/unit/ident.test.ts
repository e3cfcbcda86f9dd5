/**
 * Names: table names are read like SQL (API.md, `tables`), and the one quoting helper makes any
 * name safe in SQL text and reads back as the same name.
 */
import { describe, expect, it } from 'vitest';
import { parseQualifiedName } from '../../src/config.js';
import { displayName, ident, identList, qualified, shortHash } from '../../src/sql/ident.js';
import { caught, expectConfigInvalid } from '../helpers/errors.js';

describe('parseQualifiedName', () => {
  it.each([
    ['orders', 'public', 'orders'],
    ['sales.orders', 'sales', 'orders'],
    ['public.orders_id_seq', 'public', 'orders_id_seq'],
    // Unquoted parts fold to lower case, as in SQL.
    ['Orders', 'public', 'orders'],
    ['PUBLIC.Lower_T', 'public', 'lower_t'],
    // Double quotes keep a part exactly as written; "" inside them is one ".
    ['"MixedCase"', 'public', 'MixedCase'],
    ['"Odd Schema"."Tbl ""Quoted"" ñ"', 'Odd Schema', 'Tbl "Quoted" ñ'],
    ['sales."Orders"', 'sales', 'Orders'],
    ['"Sales".Orders', 'Sales', 'orders'],
    ['"a.b"."c.d"', 'a.b', 'c.d'],
    ['"""".""""', '"', '"'],
  ])('%s is %s . %s', (text, schema, name) => {
    expect(parseQualifiedName(text)).toEqual({ schema, name });
  });

  it('a name without a schema takes the default schema given', () => {
    expect(parseQualifiedName('orders', 'app')).toEqual({ schema: 'app', name: 'orders' });
    expect(parseQualifiedName('"Orders"', 'app')).toEqual({ schema: 'app', name: 'Orders' });
    expect(parseQualifiedName('sales.orders', 'app')).toEqual({ schema: 'sales', name: 'orders' });
  });

  it.each([
    ['"orders', /unterminated/i],
    ['sales."orders', /unterminated/i],
    ['"sales.orders', /unterminated/i],
    ['', /schema\.table/],
    ['.orders', /empty/i],
    ['sales..orders', /empty/i],
    ['""', /empty/i],
    ['sales.""', /empty/i],
    ['sales.', /trailing dot/i],
    ['"sales".', /trailing dot/i],
    ['db.sales.orders', /schema\.table/],
    ['a.b.c.d', /schema\.table/],
    ['my orders', /spaces/i],
    ['sales.my orders', /spaces/i],
    ['sales"orders"', /unexpected/i],
  ])('%j is refused: CONFIG_INVALID naming the text (%s)', async (text, why) => {
    const err = await caught(() => parseQualifiedName(text));
    expectConfigInvalid(err);
    expect(err.message).toContain(JSON.stringify(text));
    expect(err.message).toMatch(why);
    expect(err.issues).toEqual([{ path: 'tables', message: expect.stringContaining(JSON.stringify(text)) }]);
  });
});

describe('ident, qualified, identList, displayName', () => {
  it.each([
    ['orders', '"orders"'],
    ['Orders', '"Orders"'],
    ['order', '"order"'],
    ['with space', '"with space"'],
    ['Tbl "Quoted" ñ', '"Tbl ""Quoted"" ñ"'],
    ['""', '""""""'],
    ['a.b', '"a.b"'],
    ["it's", `"it's"`],
  ])('ident(%j) is %s', (name, sql) => {
    expect(ident(name)).toBe(sql);
  });

  it('refuses a name with a NUL byte: configuration says CONFIG_INVALID, ident() never gets one', async () => {
    expect(() => ident('bad\0name')).toThrow(TypeError);
    const err = await caught(() => parseQualifiedName('bad\0name'));
    expect(err).toMatchObject({ name: 'PgferryError', code: 'CONFIG_INVALID' });
  });

  it('qualified() quotes both parts; displayName() shows them unquoted', () => {
    const q = { schema: 'Odd Schema', name: 'Tbl "Quoted" ñ' };
    expect(qualified(q)).toBe('"Odd Schema"."Tbl ""Quoted"" ñ"');
    expect(displayName(q)).toBe('Odd Schema.Tbl "Quoted" ñ');
    expect(qualified({ schema: 'public', name: 'orders' })).toBe('"public"."orders"');
    expect(displayName({ schema: 'public', name: 'orders' })).toBe('public.orders');
  });

  it('identList() joins quoted names, with an optional alias', () => {
    expect(identList(['id', 'Sub "K" é'])).toBe('"id", "Sub ""K"" é"');
    expect(identList(['id', 'Sub "K" é'], 't')).toBe('t."id", t."Sub ""K"" é"');
    expect(identList(['only'])).toBe('"only"');
    expect(identList([])).toBe('');
  });

  it('what qualified() writes, parseQualifiedName() reads back as the same name', () => {
    const names = [
      { schema: 'public', name: 'orders' },
      { schema: 'Odd Schema', name: 'Tbl "Quoted" ñ' },
      { schema: 'a.b', name: 'c.d' },
      { schema: 'UPPER', name: 'MiXeD' },
      { schema: '"', name: '""' },
      { schema: 'täst', name: '日本語 🚀' },
    ];
    for (const q of names) expect(parseQualifiedName(qualified(q))).toEqual(q);
  });
});

describe('shortHash', () => {
  // Names derived from it live in databases: the function must never change.
  it.each([
    ['', '811c9dc5'],
    ['a', 'e40c292c'],
    ['foobar', 'bf9cf968'],
    ['ñ', '069dc2f9'],
    ['public.orders', '81854963'],
  ])('shortHash(%j) is %s (FNV-1a, 32 bit, over UTF-8)', (text, hash) => {
    expect(shortHash(text)).toBe(hash);
  });

  it('is 8 hex digits, the same for the same text, different for near names', () => {
    const names = ['public.orders', 'public.order', 'public.Orders', 'Public.orders', 'public.orders '];
    const hashes = names.map(shortHash);
    for (const h of hashes) expect(h).toMatch(/^[0-9a-f]{8}$/);
    expect(new Set(hashes).size).toBe(names.length);
    expect(names.map(shortHash)).toEqual(hashes);
  });
});
