/**
 * SQL that pgferry builds, read as text: quoting of odd names, shared predicates, and the
 * capture DDL that install() runs and installSql() prints.
 */
import { describe, expect, it } from 'vitest';
import type { TableInfo } from '../../src/catalog/tables.js';
import { captureSql } from '../../src/capture/ddl.js';
import { migrations } from '../../src/capture/migrations.js';
import { identList, keyJoin, literal, qualified } from '../../src/sql/ident.js';
import { deltaTableName, tempNames, triggerName } from '../../src/sql/names.js';

const col = (name: string, type: string): TableInfo['columns'][number] => ({ name, type, typeOid: 23, elemOid: 0, collation: null, deterministic: true, notNull: true, generated: false, identity: '' });

const ODD: TableInfo = {
  schema: 'Odd "S"',
  name: 'Tbl ñ',
  kind: 'table',
  oid: 1,
  columns: [col('Id', 'integer'), col('k2', 'text'), col('v', 'text')],
  key: ['Id', 'k2'],
  keyOps: ['OPERATOR(pg_catalog.=)', 'OPERATOR(pg_catalog.=)'],
  keyOpsDefault: true,
  owner: 'app',
  ownedByMe: true,
  references: [],
  foreignKeys: [],
};

describe('sql text', () => {
  it('quotes names and literals, and joins keys by every key column', () => {
    expect(qualified(ODD)).toBe('"Odd ""S"""."Tbl ñ"');
    expect(identList(['a', 'B"c'], 'x')).toBe('x."a", x."B""c"');
    expect(literal("it's")).toBe("'it''s'");
    expect(keyJoin({ key: ODD.key, keyOps: ['OPERATOR(pg_catalog.=)', 'OPERATOR(public.=)'] }, 'd', 's')).toBe('d."Id" OPERATOR(pg_catalog.=) s."Id" AND d."k2" OPERATOR(public.=) s."k2"');
    // An operator outside pg_catalog compares its own type: both sides cast to it.
    expect(keyJoin({ key: ODD.key, keyOps: ['OPERATOR(pg_catalog.=)', 'OPERATOR(public.=)'], keyCasts: ['', 'public.citext'] }, 'd', 's')).toBe(
      'd."Id" OPERATOR(pg_catalog.=) s."Id" AND d."k2"::public.citext OPERATOR(public.=) s."k2"::public.citext',
    );
    expect(() => literal('a\0b')).toThrow(/NUL/);
  });

  it('names temporary tables by position and capture objects by a stable hash of the table', () => {
    expect(tempNames(3)).toEqual({ keys: 'pgferry_k_3', staging: 'pgferry_s_3', contenders: 'pgferry_c_3' });
    expect(deltaTableName(ODD)).toMatch(/^delta_[0-9a-f]{8}$/);
    expect(deltaTableName(ODD)).toBe(deltaTableName({ schema: 'Odd "S"', name: 'Tbl ñ' }));
    expect(deltaTableName(ODD)).not.toBe(deltaTableName({ schema: 'Odd "S"', name: 'Tbl n' }));
    expect(triggerName('pgferry', '_trunc')).toBe('pgferry_capture_trunc');
  });

  it('capture DDL, statement-level (the default): a delta table with the key in its own types, one function, four triggers', () => {
    const ddl = captureSql('my schema', ODD, 'statement');
    expect(ddl).toHaveLength(6);
    const [table, fn, ins, upd, del, trunc] = ddl;
    expect(table).toContain(`CREATE TABLE "my schema"."${deltaTableName(ODD)}"`);
    expect(table).toContain('"Id" integer NOT NULL');
    expect(table).toContain('"k2" text NOT NULL');
    expect(table).toContain('txid xid8 NOT NULL');
    // No SET clause (a settings save and restore per call): every name is qualified instead,
    // the types of its variables included.
    expect(fn).toMatch(/SECURITY DEFINER AS/);
    expect(fn).not.toMatch(/\bSET\b/);
    expect(fn).toContain('pgferry_xid pg_catalog.xid8');
    expect(fn).toContain('pgferry_at pg_catalog.timestamptz');
    // No operator that a writer's search_path could resolve: every comparison names its schema.
    expect(fn!.replaceAll(':=', '').replace(/OPERATOR\([a-z_]+\.=\)/g, '').replace(/search_path = /, '')).not.toMatch(/[=<>]/);
    expect(fn).not.toMatch(/NULLIF|COALESCE/i);
    expect(fn).toContain(`pg_catalog.pg_notify('my schema', 'Odd "S".Tbl ñ')`);
    // Moved keys by a set operation (linear whatever plan the session cached), or, for a key
    // whose index has another operator class, by an anti-join on the key's own operators.
    expect(fn).toContain('FROM (SELECT "Id", "k2" FROM old_rows EXCEPT ALL SELECT "Id", "k2" FROM new_rows) m');
    const custom = captureSql('my schema', { ...ODD, keyOpsDefault: false }, 'statement')[1]!;
    expect(custom).toContain('n."Id" OPERATOR(pg_catalog.=) o."Id" AND n."k2" OPERATOR(pg_catalog.=) o."k2"');
    expect(custom).not.toContain('EXCEPT');
    expect(ins).toContain('AFTER INSERT ON "Odd ""S"""."Tbl ñ" REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT');
    expect(upd).toContain('REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows');
    expect(del).toContain('AFTER DELETE');
    expect(trunc).toMatch(/AFTER TRUNCATE ON "Odd ""S"""\."Tbl ñ" FOR EACH STATEMENT EXECUTE FUNCTION "my schema"\."capture_[0-9a-f]{8}"\(\)/);
    expect(fn).toContain(`VALUES ('Odd "S"', 'Tbl ñ', pgferry_xid`);
  });

  it("capture DDL, row-level (capture: 'row'): one INSERT per row, the old key too when an UPDATE moved it", () => {
    const ddl = captureSql('my schema', { ...ODD, keyOps: ['OPERATOR(pg_catalog.=)', 'OPERATOR("my ops".=)'], keyOpsDefault: false }, 'row');
    expect(ddl).toHaveLength(6);
    const [, fn, ins, upd, del, trunc] = ddl;
    expect(fn).toMatch(/SECURITY DEFINER AS/);
    expect(fn).not.toMatch(/\bSET\b|new_rows|old_rows/);
    expect(fn).toContain('VALUES (NEW."Id", NEW."k2", pgferry_xid, pgferry_at, pgferry_by, pgferry_origin)');
    expect(fn).toContain('VALUES (OLD."Id", OLD."k2", pgferry_xid');
    // The key moved when the key index's own operators say so.
    expect(fn).toContain(`TG_OP OPERATOR(pg_catalog.=) 'UPDATE' AND NOT (OLD."Id" OPERATOR(pg_catalog.=) NEW."Id" AND OLD."k2" OPERATOR("my ops".=) NEW."k2")`);
    expect(fn!.replaceAll(':=', '').replace(/OPERATOR\([a-z_" ]+\.=\)/g, '')).not.toMatch(/[=<>]/);
    expect(fn).toContain(`pg_catalog.pg_notify('my schema', 'Odd "S".Tbl ñ')`);
    // Once per transaction, and never through PERFORM (the query executor for every row).
    expect(fn).toMatch(/pg_catalog\.set_config\('pgferry\.notified_[0-9a-f]{16}', 'y', true\)/);
    expect(fn).not.toMatch(/^\s*PERFORM/m);
    expect(fn).toContain(`VALUES ('Odd "S"', 'Tbl ñ', pgferry_xid`);
    expect(ins).toMatch(/AFTER INSERT ON "Odd ""S"""\."Tbl ñ" FOR EACH ROW EXECUTE FUNCTION "my schema"\."capture_[0-9a-f]{8}"\(\)$/);
    expect(upd).toContain('AFTER UPDATE ON "Odd ""S"""."Tbl ñ" FOR EACH ROW');
    expect(del).toContain('AFTER DELETE ON "Odd ""S"""."Tbl ñ" FOR EACH ROW');
    expect(trunc).toContain('AFTER TRUNCATE ON "Odd ""S"""."Tbl ñ" FOR EACH STATEMENT');
  });

  it('migrations quote the library schema everywhere', () => {
    for (const m of migrations) {
      const text = m.sql('we"ird');
      expect(text).toContain('"we""ird".');
      // Every other mention is inside a string literal (e.g. a trigger name built in a DO block).
      expect(text.replaceAll('"we""ird"', '').replaceAll(`'we"ird`, '')).not.toContain('we"ird');
    }
  });
});
