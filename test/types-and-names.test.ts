/**
 * Values of every common type round-trip exactly, generated and identity columns are handled,
 * and schema/table/column names with capitals, spaces, quotes and non-ASCII replicate.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createDatabases, sqlAll, tableChecksum, tableContents } from './helpers/db.js';
import { kick, stopReplicatorsAfterEach } from './helpers/replicators.js';

const replicators = stopReplicatorsAfterEach();

function sortKeys<K extends Record<string, unknown>>(keys: K[]): K[] {
  return [...keys].sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y)));
}

const TYPES_DDL = `
  CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy', 'very ''happy'' ñ');
  CREATE TABLE public.t (
    id    int PRIMARY KEY,
    txt   text,
    bin   bytea,
    j     json,
    jb    jsonb,
    ia    int[],
    ta    text[],
    num   numeric(30,10),
    ts    timestamptz,
    d     date,
    iv    interval,
    u     uuid,
    ip    inet,
    m     public.mood,
    b     boolean,
    f8    float8,
    big   bigint,
    gen   text GENERATED ALWAYS AS (coalesce(left(txt, 12), '<null>') || ':' || id::text) STORED,
    ident bigint GENERATED ALWAYS AS IDENTITY
  );
  CREATE TABLE public.idt (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
`;

const COLS = 'id, txt, bin, j, jb, ia, ta, num, ts, d, iv, u, ip, m, b, f8, big';
const INSERT = `INSERT INTO t (${COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`;

/** Every column as text or a value pg decodes exactly (so two databases compare exactly). */
const SPOT = `
  SELECT id, txt, bin, j::text AS j, jb::text AS jb, ia, ta, num::text AS num,
         (ts AT TIME ZONE 'UTC')::text AS ts_utc, d::text AS d, iv::text AS iv, u::text AS u,
         ip::text AS ip, m::text AS m, b, f8::text AS f8, big::text AS big, gen, ident::text AS ident
  FROM t ORDER BY id`;

const TXT = `tab\there\nnew line\\back\\slash 'single' "double" ñ日本語🚀 \r cr \\. end\n\\.\n`;
const BIN = Buffer.from([0, 1, 0, 255, 92, 10, 13, 0, 0x5c, 0x2e, 0]);
const JSON_TEXT = `{"b": 1,   "a": [1, 2, {"x": null}], "k": "first", "k": "dup", "s": "q\\"uote \\u00f1\\n"}`;
const JSONB_TEXT = `{"z": [1, "two", null, true, 1.50], "a": {"nested": "ñ", "tab": "\\t"}}`;

describe('types round-trip exactly', () => {
  it('text, bytea, json, jsonb, arrays, numeric, time types, uuid, inet, enum, boolean, NULLs, generated and identity columns', async () => {
    const [a, b] = await createDatabases(2);
    await sqlAll([a!, b!], TYPES_DDL);
    // The source's identity sequences run ahead: if the target generated its own values, they would differ.
    await a!.sql(`ALTER TABLE t ALTER COLUMN ident RESTART WITH 1000`);
    await a!.sql(`ALTER TABLE idt ALTER COLUMN id RESTART WITH 500`);
    const rep = await replicators.installed([a!, b!], { tables: ['public.t', 'public.idt'] });

    const bigText = Array.from({ length: 4000 }, (_, i) => `line ${i}\t\\ "q" 'q' ñ ${'x'.repeat(i % 50)}\n`).join('');
    const bigBin = randomBytes(300_000);
    // 1: rich values
    await a!.sql(INSERT, [
      1, TXT, BIN, JSON_TEXT, JSONB_TEXT, [1, null, 3], ['a b', null, 'NULL', 'x"y', 'back\\slash', '', '{}', 'ñ', 'comma,here'],
      '12345678901234567890.0123456789', '2024-02-29 23:59:59.123456+05:30', '2024-02-29', '1 year 2 mons 3 days 04:05:06.789',
      'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '192.168.1.5/24', 'very \'happy\' ñ', true, '0.1', '9223372036854775807',
    ]);
    // 2: NULL in every nullable column
    await a!.sql(`INSERT INTO t (id) VALUES (2)`);
    // 3: edge values that are easy to confuse with NULL or to mangle
    await a!.sql(INSERT, [
      3, '', Buffer.alloc(0), 'null', '"just a string"', [], [null],
      '-0.0000000001', 'infinity', '0044-03-15 BC', '-5 days +03:00:00',
      '00000000-0000-0000-0000-000000000000', '::1', 'sad', false, 'NaN', '-9223372036854775808',
    ]);
    // 4: multi-dimensional arrays, large values
    await a!.sql(INSERT, [
      4, bigText, bigBin, '[]', '{}', '{{1,2},{NULL,4}}', '{{"a","b"},{"c",NULL}}',
      '0', '-infinity', '2000-01-01', '0', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '2001:db8::1/64', 'ok', null, '-Infinity', '0',
    ]);
    await a!.sql(`INSERT INTO idt (v) VALUES ('one'), ('two'), ('three')`);
    await a!.sql(`DELETE FROM idt WHERE v = 'two'`);

    const r = await kick(rep);
    expect(r).toMatchObject({
      sync: 's',
      status: 'ok',
      tables: {
        'public.t': { upserted: 4, deleted: 0, conflicts: 0 },
        'public.idt': { upserted: 2, deleted: 0, conflicts: 0 },
      },
    });

    const srcRows = await tableContents(a!, 'public.t');
    expect(srcRows).toHaveLength(4);
    expect(await tableContents(b!, 'public.t')).toEqual(srcRows);
    expect(await tableChecksum(b!, 'public.t')).toEqual(await tableChecksum(a!, 'public.t'));
    expect(await tableContents(b!, 'public.idt')).toEqual(await tableContents(a!, 'public.idt'));
    expect(await b!.sql(`SELECT id::text, v FROM idt ORDER BY id`)).toEqual([
      { id: '500', v: 'one' },
      { id: '502', v: 'three' },
    ]);

    // Spot checks through pg, on the target, against the values written.
    const src = await a!.sql(SPOT);
    const dst = await b!.sql(SPOT);
    expect(dst).toEqual(src);
    const [r1, r2, r3, r4] = dst;
    expect(r1.txt).toBe(TXT);
    expect(Buffer.compare(r1.bin, BIN)).toBe(0);
    expect(r1.j).toBe(JSON_TEXT); // json keeps its text exactly: spacing, key order, duplicate keys
    expect(JSON.parse(r1.jb)).toEqual({ z: [1, 'two', null, true, 1.5], a: { nested: 'ñ', tab: '\t' } });
    expect(r1.ia).toEqual([1, null, 3]);
    expect(r1.ta).toEqual(['a b', null, 'NULL', 'x"y', 'back\\slash', '', '{}', 'ñ', 'comma,here']);
    expect(r1.num).toBe('12345678901234567890.0123456789');
    expect(r1.ts_utc).toBe('2024-02-29 18:29:59.123456');
    expect(r1.d).toBe('2024-02-29');
    expect(r1.iv).toBe('1 year 2 mons 3 days 04:05:06.789');
    expect(r1.u).toBe('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
    expect(r1.ip).toBe('192.168.1.5/24');
    expect(r1.m).toBe("very 'happy' ñ");
    expect(r1.b).toBe(true);
    expect(r1.f8).toBe('0.1');
    expect(r1.big).toBe('9223372036854775807');
    expect(r1.gen).toBe(`${[...TXT].slice(0, 12).join('')}:1`);
    expect(r1.ident).toBe('1000');

    expect(r2).toEqual({
      id: 2, txt: null, bin: null, j: null, jb: null, ia: null, ta: null, num: null, ts_utc: null, d: null, iv: null,
      u: null, ip: null, m: null, b: null, f8: null, big: null, gen: '<null>:2', ident: '1001',
    });

    expect(r3.txt).toBe('');
    expect(Buffer.isBuffer(r3.bin) && r3.bin.length).toBe(0);
    expect(r3.j).toBe('null');
    expect(r3.jb).toBe('"just a string"');
    expect(r3.ia).toEqual([]);
    expect(r3.ta).toEqual([null]);
    expect(r3.num).toBe('-0.0000000001');
    expect(r3.ts_utc).toBe('infinity');
    expect(r3.d).toBe('0044-03-15 BC');
    expect(r3.iv).toBe('-5 days +03:00:00');
    expect(r3.b).toBe(false);
    expect(r3.f8).toBe('NaN');
    expect(r3.big).toBe('-9223372036854775808');
    expect(r3.gen).toBe(':3');

    expect(r4.txt).toBe(bigText);
    expect(Buffer.compare(r4.bin, bigBin)).toBe(0);
    expect(r4.ia).toEqual([[1, 2], [null, 4]]);
    expect(r4.ta).toEqual([['a', 'b'], ['c', null]]);
    expect(r4.ip).toBe('2001:db8::1/64');
    expect(r4.f8).toBe('-Infinity');
    expect(r4.b).toBe(null);

    // The target computed the generated column itself (it cannot be written), and recomputes on update.
    await a!.sql(`UPDATE t SET txt = 'CHANGED text' WHERE id = 1`);
    // Values → NULL and NULL → values.
    await a!.sql(`UPDATE t SET txt = NULL, bin = NULL, j = NULL, jb = NULL, ia = NULL, ta = NULL, num = NULL, ts = NULL,
                  d = NULL, iv = NULL, u = NULL, ip = NULL, m = NULL, b = NULL, f8 = NULL, big = NULL WHERE id = 3`);
    await a!.sql(`UPDATE t SET txt = 'now set', bin = '\\x00ff00'::bytea, jb = '[1, {"a": null}]', ia = '{NULL}', ta = '{"",NULL,""}',
                  num = 1.5, ts = '1999-12-31 23:59:59+00', m = 'happy', b = true, f8 = '-0'::float8 WHERE id = 2`);
    await a!.sql(`DELETE FROM t WHERE id = 4`);
    await a!.sql(`INSERT INTO t (id, txt) VALUES (5, 'five')`);
    await a!.sql(`INSERT INTO idt (v) VALUES ('four')`);
    const r2run = await kick(rep);
    expect(r2run).toMatchObject({
      status: 'ok',
      tables: {
        'public.t': { upserted: 4, deleted: 1, conflicts: 0 },
        'public.idt': { upserted: 1, deleted: 0, conflicts: 0 },
      },
    });
    const src2 = await tableContents(a!, 'public.t');
    expect(src2).toHaveLength(4);
    expect(await tableContents(b!, 'public.t')).toEqual(src2);
    expect(await b!.sql(SPOT)).toEqual(await a!.sql(SPOT));
    expect(await tableContents(b!, 'public.idt')).toEqual(await tableContents(a!, 'public.idt'));
    const after = await b!.sql(`SELECT id, gen, ident::text AS ident, bin, ta, f8::text AS f8 FROM t ORDER BY id`);
    expect(after.map((x: any) => [x.id, x.gen, x.ident])).toEqual([
      [1, 'CHANGED text:1', '1000'],
      [2, 'now set:2', '1001'],
      [3, '<null>:3', '1002'],
      [5, 'five:5', '1004'],
    ]);
    expect(Buffer.compare(after[1].bin, Buffer.from([0, 255, 0]))).toBe(0);
    expect(after[1].ta).toEqual(['', null, '']);
    expect(after[1].f8).toBe('-0');
    expect(await b!.sql(`SELECT id::text, v FROM idt ORDER BY id`)).toEqual([
      { id: '500', v: 'one' },
      { id: '502', v: 'three' },
      { id: '503', v: 'four' },
    ]);
  });
});

const ODD_SCHEMA_DDL = `
  CREATE SCHEMA "Odd Schema";
  CREATE TABLE "Odd Schema"."Tbl ""Quoted"" ñ" (
    "Id Key"        int,
    "Sub ""K"" é"   text,
    "Väl ""x"""     text,
    "CamelCase"     int,
    "order"         text,
    "with space"    text,
    PRIMARY KEY ("Id Key", "Sub ""K"" é")
  );
  CREATE TABLE public."MixedCase" ("ID" int PRIMARY KEY, "Value" text);
  CREATE TABLE public.mixedcase (id int PRIMARY KEY, v text);
  CREATE TABLE public.lower_t (id int PRIMARY KEY, v text);
`;
const ODD = '"Odd Schema"."Tbl ""Quoted"" ñ"';
const ODD_NAME = 'Odd Schema.Tbl "Quoted" ñ';

describe('names', () => {
  it('schema, table and column names with capitals, spaces, double quotes and non-ASCII replicate', async () => {
    const [a, b] = await createDatabases(2);
    await sqlAll([a!, b!], ODD_SCHEMA_DDL);
    const rep = await replicators.installed([a!, b!], { tables: [ODD, '"MixedCase"', 'PUBLIC.Lower_T'] });
    const applied: any[] = [];
    rep.on('rows:applied', (e: any) => { applied.push(e); });

    await a!.sql(`INSERT INTO ${ODD} VALUES
      (1, 'ä', 'v1', 10, 'o1', 's1'),
      (1, 'b "q"', 'v2', 20, 'o2', 's2'),
      (2, 'ä', 'v3', 30, 'o3', 's3')`);
    await a!.sql(`INSERT INTO public."MixedCase" VALUES (1, 'M1'), (2, 'M2')`);
    await a!.sql(`INSERT INTO public.mixedcase VALUES (1, 'not replicated')`);
    await a!.sql(`INSERT INTO public.lower_t VALUES (1, 'lower')`);

    const r1 = await kick(rep);
    expect(r1.status).toBe('ok');
    expect(Object.keys(r1.tables).sort()).toEqual([ODD_NAME, 'public.MixedCase', 'public.lower_t'].sort());
    expect(r1.tables[ODD_NAME]).toMatchObject({ upserted: 3, deleted: 0, conflicts: 0 });
    expect(r1.tables['public.MixedCase']).toMatchObject({ upserted: 2, deleted: 0, conflicts: 0 });
    expect(r1.tables['public.lower_t']).toMatchObject({ upserted: 1, deleted: 0, conflicts: 0 });

    const odd = await tableContents(b!, ODD);
    expect(odd).toHaveLength(3);
    expect(odd).toEqual(await tableContents(a!, ODD));
    expect(await b!.sql(`SELECT "Id Key", "Sub ""K"" é", "Väl ""x""", "CamelCase", "order", "with space" FROM ${ODD} ORDER BY "Id Key", "Sub ""K"" é" COLLATE "C"`)).toEqual([
      { 'Id Key': 1, 'Sub "K" é': 'b "q"', 'Väl "x"': 'v2', CamelCase: 20, order: 'o2', 'with space': 's2' },
      { 'Id Key': 1, 'Sub "K" é': 'ä', 'Väl "x"': 'v1', CamelCase: 10, order: 'o1', 'with space': 's1' },
      { 'Id Key': 2, 'Sub "K" é': 'ä', 'Väl "x"': 'v3', CamelCase: 30, order: 'o3', 'with space': 's3' },
    ]);
    expect(await tableContents(b!, 'public."MixedCase"')).toEqual(['(1,M1)', '(2,M2)']);
    expect(await tableContents(b!, 'public.lower_t')).toEqual(['(1,lower)']);
    // The lower-case namesake of "MixedCase" is not part of the sync.
    expect(await tableContents(b!, 'public.mixedcase')).toEqual([]);

    const oddEvents = applied.filter((e) => e.table === ODD_NAME);
    expect(oddEvents).toHaveLength(1);
    expect(oddEvents[0]).toMatchObject({ sync: 's', target: 'b', deleted: [] });
    expect(sortKeys(oddEvents[0].upserted)).toEqual(sortKeys([
      { 'Id Key': 1, 'Sub "K" é': 'ä' },
      { 'Id Key': 1, 'Sub "K" é': 'b "q"' },
      { 'Id Key': 2, 'Sub "K" é': 'ä' },
    ]));
    const mixedEvents = applied.filter((e) => e.table === 'public.MixedCase');
    expect(mixedEvents).toHaveLength(1);
    expect(sortKeys(mixedEvents[0].upserted)).toEqual([{ ID: 1 }, { ID: 2 }]);
    expect(applied.map((e) => e.table).sort()).toEqual([ODD_NAME, 'public.MixedCase', 'public.lower_t'].sort());

    // Updates, deletes and a key change on the odd table.
    applied.length = 0;
    await a!.sql(`UPDATE ${ODD} SET "Väl ""x""" = 'changed', "order" = NULL WHERE "Id Key" = 1 AND "Sub ""K"" é" = 'ä'`);
    await a!.sql(`DELETE FROM ${ODD} WHERE "Id Key" = 2`);
    await a!.sql(`UPDATE ${ODD} SET "Sub ""K"" é" = 'ñ''"' WHERE "Id Key" = 1 AND "Sub ""K"" é" = 'b "q"'`);
    await a!.sql(`UPDATE public."MixedCase" SET "Value" = 'M1 new' WHERE "ID" = 1`);
    const r2 = await kick(rep);
    expect(r2.status).toBe('ok');
    expect(r2.tables[ODD_NAME]).toMatchObject({ upserted: 2, deleted: 2, conflicts: 0 });
    expect(r2.tables['public.MixedCase']).toMatchObject({ upserted: 1, deleted: 0, conflicts: 0 });
    expect(await tableContents(b!, ODD)).toEqual(await tableContents(a!, ODD));
    expect(await b!.sql(`SELECT "Id Key", "Sub ""K"" é", "Väl ""x""", "order" FROM ${ODD} ORDER BY "Id Key", "Sub ""K"" é" COLLATE "C"`)).toEqual([
      { 'Id Key': 1, 'Sub "K" é': 'ä', 'Väl "x"': 'changed', order: null },
      { 'Id Key': 1, 'Sub "K" é': `ñ'"`, 'Väl "x"': 'v2', order: 'o2' },
    ]);
    expect(await tableContents(b!, 'public."MixedCase"')).toEqual(['(1,"M1 new")', '(2,M2)']);
    const ev = applied.find((e) => e.table === ODD_NAME);
    expect(ev).toBeDefined();
    expect(sortKeys(ev.upserted)).toEqual(sortKeys([
      { 'Id Key': 1, 'Sub "K" é': 'ä' },
      { 'Id Key': 1, 'Sub "K" é': `ñ'"` },
    ]));
    expect(sortKeys(ev.deleted)).toEqual(sortKeys([
      { 'Id Key': 2, 'Sub "K" é': 'ä' },
      { 'Id Key': 1, 'Sub "K" é': 'b "q"' },
    ]));
    expect((await kick(rep)).status).toBe('empty');
  });

  it('tables whose 63-byte names differ only at the end stay apart', async () => {
    const [a, b] = await createDatabases(2);
    const base = 'very_long_table_name_'.padEnd(61, 'x');
    const n1 = `${base}_1`;
    const n2 = `${base}_2`;
    expect(n1).toHaveLength(63);
    await sqlAll([a!, b!], `
      CREATE TABLE public.${n1} (id int PRIMARY KEY, v text);
      CREATE TABLE public.${n2} (id int PRIMARY KEY, v text);`);
    const rep = await replicators.installed([a!, b!], { tables: [n1, n2] });
    await a!.sql(`INSERT INTO ${n1} SELECT g, 'one' FROM generate_series(1, 3) g`);
    await a!.sql(`INSERT INTO ${n2} SELECT g, 'two' FROM generate_series(1, 5) g`);
    const r = await kick(rep);
    expect(r.tables[`public.${n1}`]).toMatchObject({ upserted: 3, deleted: 0, conflicts: 0 });
    expect(r.tables[`public.${n2}`]).toMatchObject({ upserted: 5, deleted: 0, conflicts: 0 });
    expect(await tableContents(b!, n1)).toEqual(['(1,one)', '(2,one)', '(3,one)']);
    expect(await tableContents(b!, n2)).toEqual(await tableContents(a!, n2));
    expect(await tableContents(b!, n2)).toHaveLength(5);

    await a!.sql(`DELETE FROM ${n1} WHERE id = 2`);
    await a!.sql(`UPDATE ${n2} SET v = 'changed' WHERE id = 2`);
    const r2 = await kick(rep);
    expect(r2.tables[`public.${n1}`]).toMatchObject({ upserted: 0, deleted: 1 });
    expect(r2.tables[`public.${n2}`]).toMatchObject({ upserted: 1, deleted: 0 });
    expect(await tableContents(b!, n1)).toEqual(['(1,one)', '(3,one)']);
    expect(await b!.sql(`SELECT v FROM ${n2} WHERE id = 2`)).toEqual([{ v: 'changed' }]);
    expect(await tableContents(b!, n2)).toEqual(await tableContents(a!, n2));
  });
});
