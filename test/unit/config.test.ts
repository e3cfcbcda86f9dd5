/**
 * Configuration errors, checked with no server: bad configuration fails at once with
 * CONFIG_INVALID naming every bad field by its path; unknown names fail with UNKNOWN_DATABASE /
 * UNKNOWN_SYNC; a bad config never shows its password. Databases are added by connection
 * string only: adding one connects to nothing (no server listens on port 1 either).
 */
import { describe, expect, it } from 'vitest';
import { Replicator, isPgferryError, PgferryError } from '../../src/index.js';
import { caught, expectConfigInvalid, expectNoSecret } from '../helpers/errors.js';
import { stopReplicatorsAfterEach } from '../helpers/replicators.js';

const { create: newReplicator } = stopReplicatorsAfterEach();

/** A connection string to a server that is not there. */
const nowhere = (db: string) => `postgres://app@127.0.0.1:1/${db}`;

/** A replicator with databases `a` and `b` added. */
async function twoDatabases(): Promise<Replicator> {
  const rep = newReplicator();
  await rep.addDatabase('a', nowhere('a'));
  await rep.addDatabase('b', nowhere('b'));
  return rep;
}

describe('addSync validation', () => {
  it('rejects an unknown role, naming databases.<name>', async () => {
    const rep = await twoDatabases();
    const err = await caught(() =>
      rep.addSync('s', { tables: ['good'], databases: { a: 'source', b: 'mirror' as 'target' }, autokick: false }),
    );
    expectConfigInvalid(err, 'databases.b');
    expect(err.message).toContain('databases.b');

    // Nothing of the bad sync was kept: the name is unknown, and a good config under it works.
    await expect(rep.kick('s')).rejects.toMatchObject({ code: 'UNKNOWN_SYNC' });
    await rep.addSync('s', { tables: ['good'], databases: { a: 'source', b: 'target' }, autokick: false });
  });

  it('rejects an empty tables list, naming tables', async () => {
    const rep = await twoDatabases();
    const err = await caught(() => rep.addSync('s', { tables: [], databases: { a: 'source', b: 'target' }, autokick: false }));
    expectConfigInvalid(err, 'tables');
  });

  it('rejects a misspelled option, naming it', async () => {
    const rep = await twoDatabases();
    const err = await caught(() =>
      rep.addSync('s', {
        tables: ['good'],
        databases: { a: 'source', b: 'target' },
        autokik: true,
      } as unknown as Parameters<Replicator['addSync']>[1]),
    );
    expectConfigInvalid(err, 'autokik');
  });

  it('rejects a table entry that is not a string, naming tables.<index>', async () => {
    const rep = await twoDatabases();
    const err = await caught(() =>
      rep.addSync('s', {
        tables: ['good', 42 as unknown as string],
        databases: { a: 'source', b: 'target' },
        autokick: false,
      }),
    );
    expectConfigInvalid(err, 'tables.1');
  });

  it('rejects a bad onetimecopy value, naming onetimecopy', async () => {
    const rep = await twoDatabases();
    const err = await caught(() =>
      rep.addSync('s', {
        tables: ['good'],
        databases: { a: 'source', b: 'target' },
        onetimecopy: 'sometimes' as 'never',
        autokick: false,
      }),
    );
    expectConfigInvalid(err, 'onetimecopy');
  });

  it('rejects a bad conflictStrategy, naming conflictStrategy', async () => {
    const rep = await twoDatabases();
    const err = await caught(() =>
      rep.addSync('s', {
        tables: ['good'],
        databases: { a: 'source', b: 'source' },
        conflictStrategy: 'newest' as 'latest',
        autokick: false,
      }),
    );
    expectConfigInvalid(err, 'conflictStrategy');
  });

  it('rejects a sync with no source, naming databases', async () => {
    const rep = await twoDatabases();
    const err = await caught(() =>
      rep.addSync('s', { tables: ['good'], databases: { a: 'target', b: 'target' }, autokick: false }),
    );
    expectConfigInvalid(err, 'databases');
  });

  it('names every bad field at once', async () => {
    const rep = await twoDatabases();
    const err = await caught(() =>
      rep.addSync('s', {
        tables: [],
        databases: { a: 'source', b: 'target' },
        onetimecopy: 'sometimes',
        autokik: true,
      } as unknown as Parameters<Replicator['addSync']>[1]),
    );
    expectConfigInvalid(err, 'tables', 'onetimecopy', 'autokik');
  });

  it('rejects a sync naming a database that was never added with UNKNOWN_DATABASE', async () => {
    const rep = await twoDatabases();
    const err = await caught(() =>
      rep.addSync('s', { tables: ['good'], databases: { a: 'source', nowhere_db: 'target' }, autokick: false }),
    );
    expect(isPgferryError(err)).toBe(true);
    expect(err).toBeInstanceOf(PgferryError);
    expect(err).toMatchObject({ code: 'UNKNOWN_DATABASE' });
    expect(err.message).toContain('nowhere_db');
  });
});

describe('addDatabase validation', () => {
  it('rejects a port that is not a number, naming port', async () => {
    const rep = newReplicator();
    const err = await caught(() =>
      rep.addDatabase('x', { host: '127.0.0.1', port: 'abc', database: 'shop', user: 'app' } as unknown as string),
    );
    expect(err).toMatchObject({ code: 'CONFIG_INVALID' });
    expect(err.issues?.some((i) => /(^|\.)port$/.test(i.path)), JSON.stringify(err.issues)).toBe(true);
    expect(err.message).toMatch(/port/);
  });

  it('rejects an unknown key, naming it', async () => {
    const rep = newReplicator();
    const err = await caught(() =>
      rep.addDatabase('x', { hots: '127.0.0.1', port: 5432, database: 'shop', user: 'app' } as unknown as string),
    );
    expect(err).toMatchObject({ code: 'CONFIG_INVALID' });
    expect(err.issues?.some((i) => /(^|\.)hots$/.test(i.path)), JSON.stringify(err.issues)).toBe(true);
    expect(err.message).toMatch(/hots/);
  });

  it('rejects a config that is neither a string nor an object', async () => {
    const rep = newReplicator();
    const err = await caught(() => rep.addDatabase('x', 42 as unknown as string));
    expect(err).toMatchObject({ code: 'CONFIG_INVALID' });
    expect(isPgferryError(err)).toBe(true);
  });

  it('rejects a duplicate database name', async () => {
    const rep = newReplicator();
    await rep.addDatabase('shopdb', nowhere('shop'));
    const err = await caught(() => rep.addDatabase('shopdb', nowhere('shop')));
    expect(err).toBeInstanceOf(PgferryError);
    expect(err).toMatchObject({ code: 'CONFIG_INVALID' });
    expect(err.message).toContain('shopdb');
  });

  it('never shows the password of a bad config', async () => {
    const rep = newReplicator();
    const err = await caught(() =>
      rep.addDatabase('x', { host: '127.0.0.1', port: 'abc', user: 'app', password: 'sekret-pw', database: 'shop' } as unknown as string),
    );
    expect(err).toMatchObject({ code: 'CONFIG_INVALID' });
    expectNoSecret(err, 'sekret-pw');
  });
});

describe('unknown names and error identity', () => {
  it('kick of an unknown sync rejects UNKNOWN_SYNC naming it', async () => {
    const rep = newReplicator();
    const p = rep.kick('nope');
    await expect(p).rejects.toMatchObject({ code: 'UNKNOWN_SYNC' });
    await expect(p).rejects.toThrow(/nope/);
    const err = await caught(() => rep.kick('nope'));
    expect(isPgferryError(err)).toBe(true);
    expect(err instanceof PgferryError).toBe(true);
    expect(err instanceof Error).toBe(true);
    expect(err.name).toBe('PgferryError');
  });

  it('isPgferryError is false for other errors', () => {
    expect(isPgferryError(new Error('x'))).toBe(false);
    expect(isPgferryError(null)).toBe(false);
    expect(isPgferryError('CONFIG_INVALID')).toBe(false);
  });
});

describe('replicator and kick options', () => {
  it('rejects a library schema or instance name that cannot be a name, naming the field', async () => {
    expectConfigInvalid(await caught(() => new Replicator({ schema: 'bad\0schema' })), 'schema');
    expectConfigInvalid(await caught(() => new Replicator({ name: '' })), 'name');
    expectConfigInvalid(await caught(() => new Replicator({ name: 'x'.repeat(51) })), 'name');
    expect(new Replicator({ name: 'replica-1' }).name).toBe('replica-1');
    expect(new Replicator().name).toMatch(/^.+:\d+$/);
  });

  it('rejects kick options that are not known, naming them, before anything runs', async () => {
    const rep = await twoDatabases();
    await rep.addSync('s', { tables: ['good'], databases: { a: 'source', b: 'target' }, autokick: false });
    expectConfigInvalid(await caught(() => rep.kick('s', { onetimecopy: 'sometimes' as 'always' })), 'onetimecopy');
    expectConfigInvalid(await caught(() => rep.kick('s', { timeoutMs: -1 })), 'timeoutMs');
    expectConfigInvalid(await caught(() => rep.kick('s', { timout: 5 } as never)), 'timout');
  });
});

describe('table entries with options (partial replication)', () => {
  /** A replicator with source a, target b and, with `multiMaster`, a second source c. */
  async function withDatabases(multiMaster = false): Promise<{ rep: Replicator; databases: Record<string, 'source' | 'target'> }> {
    const rep = await twoDatabases();
    await rep.addDatabase('c', nowhere('c'));
    return { rep, databases: multiMaster ? { a: 'source', b: 'target', c: 'source' } : { a: 'source', b: 'target', c: 'target' } };
  }
  const mask = (row: Record<string, unknown>) => ({ ...row, email: 'x' });

  it('accepts plain names beside entries with columns, where, transform and targets', async () => {
    const { rep, databases } = await withDatabases();
    await rep.addSync('s', {
      tables: ['plain', { table: 'orders', columns: ['total'], where: "region = 'eu'" }, { table: 'users', transform: mask, targets: ['b'] }],
      databases,
      autokick: false,
    });
  });

  it('names the field path of a bad entry', async () => {
    const { rep, databases } = await withDatabases();
    const bad = async (entry: unknown, path: string) =>
      expectConfigInvalid(await caught(() => rep.addSync('s', { tables: ['good', entry as string], databases, autokick: false })), path);
    await bad({ table: 't', columns: [] }, 'tables.1.columns');
    await bad({ table: 't', columns: ['a', 7] }, 'tables.1.columns.1');
    await bad({ table: 't', columns: ['a', 'a'] }, 'tables.1.columns');
    await bad({ table: 't', where: '  ' }, 'tables.1.where');
    await bad({ table: 't', where: 5 }, 'tables.1.where');
    await bad({ table: 't', transform: 'mask' }, 'tables.1.transform');
    await bad({ table: 't', colums: ['a'] }, 'tables.1.colums');
    await bad({ columns: ['a'] }, 'tables.1.table');
    await bad({ table: 't', transform: mask, targets: ['a'] }, 'tables.1.targets');
    await bad({ table: 't', transform: mask, targets: ['nowhere'] }, 'tables.1.targets');
    await bad({ table: 't', targets: ['b'] }, 'tables.1.targets');
  });

  it('refuses where, columns and transform in a multi-master sync', async () => {
    const { rep, databases } = await withDatabases(true);
    for (const [field, value] of [['where', 'true'], ['columns', ['v']], ['transform', mask]] as const) {
      const err = await caught(() => rep.addSync('s', { tables: ['good', { table: 't', [field]: value }], databases, autokick: false }));
      expectConfigInvalid(err, `tables.1.${field}`);
      expect(err.message).toContain('multi-master');
    }
    // The same entries are fine with one source.
    await rep.addSync('s', { tables: [{ table: 't', where: 'true', columns: ['v'], transform: mask }], databases: { a: 'source', b: 'target' }, autokick: false });
  });
});

describe('sync defaults', () => {
  it("capture defaults to 'statement' and chunkSize to 1,000,000; another capture is refused naming capture", async () => {
    const { syncConfigSchema } = await import('../../src/config.js');
    const parsed = syncConfigSchema.parse({ tables: ['t'], databases: { a: 'source', b: 'target' } });
    expect(parsed.capture).toBe('statement');
    expect(parsed.chunkSize).toBe(1_000_000);
    const rep = await twoDatabases();
    const err = await caught(() => rep.addSync('s', { tables: ['t'], databases: { a: 'source', b: 'target' }, capture: 'rows' as 'row' }));
    expectConfigInvalid(err, 'capture');
  });
});
