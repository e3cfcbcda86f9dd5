/**
 * The configuration of the `pgferry` command, with no server: defineConfig() returns what it is
 * given or names every bad field by its whole path; `${NAME}` substitution; the passwords the
 * command keeps out of its output.
 */
import { describe, expect, it } from 'vitest';
import { defineConfig, type PgferryConfig } from '../../src/index.js';
import { substituteEnv } from '../../src/cli/env.js';
import { Output } from '../../src/cli/output.js';
import { redactText, secretsOf } from '../../src/cli/secrets.js';
import { caught, expectConfigInvalid } from '../helpers/errors.js';

const base: PgferryConfig = {
  databases: { a: 'postgres://app@127.0.0.1:1/a', b: { host: '127.0.0.1', port: 1, database: 'b' } },
  syncs: { s: { tables: ['t'], databases: { a: 'source', b: 'target' } } },
};

describe('defineConfig()', () => {
  it('returns the very object it is given', () => {
    const config = { ...base, store: { kind: 'postgres' as const, database: 'a' }, schema: 'ferry' };
    expect(defineConfig(config)).toBe(config);
  });

  it('names bad fields by their path under databases, syncs, store', async () => {
    const bad = { ...base, databases: { ...base.databases, b: { port: 'x' } }, syncs: { s: { tables: [], databases: { a: 'source', b: 'target' } } }, extra: 1 };
    const err = await caught(() => defineConfig(bad as unknown as PgferryConfig));
    expectConfigInvalid(err, 'databases.b.port', 'syncs.s.tables', 'extra');
    expect(err.issues).toContainEqual({ path: 'extra', message: 'unknown option' });
  });

  it('a sync or a store naming a database not in databases; a postgres store needs database or connection', async () => {
    const err = await caught(() => defineConfig({ ...base, syncs: { s: { tables: ['t'], databases: { a: 'source', c: 'target' } } }, store: { kind: 'postgres', database: 'z' } }));
    expect(err.message).toBe('Invalid pgferry config: syncs.s.databases.c: not a database of databases; store.database: not a database of databases');
    const neither = await caught(() => defineConfig({ ...base, store: { kind: 'postgres' } }));
    expect(neither.issues).toEqual([{ path: 'store', message: 'give either database (a name of databases) or connection' }]);
    const unknownKind = await caught(() => defineConfig({ ...base, store: { kind: 'sqlite' } as never }));
    expect(unknownKind.issues).toEqual([{ path: 'store.kind', message: "must be 'memory' or 'postgres'" }]);
  });
});

describe('${NAME} substitution', () => {
  it('replaces in every string of objects and arrays; $${NAME} is literal; other values stay as they are', () => {
    const fn = () => 'x';
    const out = substituteEnv({ a: 'postgres://u:${PW}@h/${DB}', list: ['${DB}', 3], keep: '$${PW}', fn }, { PW: 'p', DB: 'shop' });
    expect(out).toEqual({ a: 'postgres://u:p@h/shop', list: ['shop', 3], keep: '${PW}', fn });
    expect(out.fn).toBe(fn);
  });

  it('an unset variable is CONFIG_INVALID naming the variable and the field', async () => {
    const err = await caught(() => substituteEnv({ databases: { a: { password: '${NOPE}' } } }, {}));
    expectConfigInvalid(err, 'databases.a.password');
    expect(err.issues).toEqual([{ path: 'databases.a.password', message: 'environment variable NOPE is not set' }]);
  });
});

describe('passwords kept out of the output', () => {
  it('are found in password fields, connection strings (URL, percent-encoded, key=value) and pools', () => {
    const pool = { connect: () => undefined, options: { password: 'in-pool' } };
    const found = secretsOf({ a: 'postgres://u:p%23w@h/db', b: { password: 'field' }, c: "host=h password='kv pw' dbname=x", d: { pool } });
    expect(found.sort()).toEqual(['field', 'in-pool', 'kv pw', 'p#w', 'p%23w']);
    expect(redactText('postgres://u:other@h/db said p#w and field', found)).toBe('postgres://u:***@h/db said *** and ***');
  });

  it('are redacted from everything the command writes, JSON-escaped forms too', () => {
    const written: string[] = [];
    const stream = { write: (t: string) => written.push(t), isTTY: false } as unknown as NodeJS.WriteStream;
    const output = new Output(stream, stream);
    output.addSecrets(['pa"ss\\word']);
    output.json({ message: 'pa"ss\\word' });
    output.log('said pa"ss\\word');
    output.error(new Error('connecting with pa"ss\\word'));
    expect(written).toEqual(['{\n  "message": "***"\n}\n', 'said ***\n', 'pgferry: ERROR: connecting with ***\n']);
  });
});
