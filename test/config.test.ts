/**
 * Configuration errors: bad configuration fails at once with CONFIG_INVALID naming every bad
 * field by its path; unknown names fail with UNKNOWN_DATABASE / UNKNOWN_SYNC; connection
 * failures never leak a password.
 */
import { inspect } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { Replicator, isPgferryError, PgferryError } from '../src/index.js';
import { createDatabases, sqlAll, type TestDb } from './helpers/db.js';

const replicators: Replicator[] = [];

function newReplicator(): Replicator {
  const rep = new Replicator();
  replicators.push(rep);
  return rep;
}

afterEach(async () => {
  while (replicators.length > 0) await replicators.pop()!.stop();
});

/** Runs `fn` (sync throw or rejection) and returns what it threw; fails when it succeeds. */
async function caught(fn: () => unknown): Promise<PgferryError> {
  try {
    await fn();
  } catch (err) {
    return err as PgferryError;
  }
  throw new Error('expected an error, but the call succeeded');
}

/** Asserts CONFIG_INVALID naming `path` both in the message and in `issues`. */
function expectConfigInvalid(err: PgferryError, ...paths: string[]): void {
  expect(isPgferryError(err)).toBe(true);
  expect(err).toBeInstanceOf(PgferryError);
  expect(err).toMatchObject({ code: 'CONFIG_INVALID' });
  expect(Array.isArray(err.issues)).toBe(true);
  for (const issue of err.issues!) {
    expect(typeof issue.path).toBe('string');
    expect(typeof issue.message).toBe('string');
    expect(issue.message.length).toBeGreaterThan(0);
  }
  const got = err.issues!.map((i) => i.path);
  for (const path of paths) {
    expect(got, `issues ${JSON.stringify(err.issues)} should name ${path}`).toContain(path);
    expect(err.message).toContain(path);
  }
}

/** A replicator with databases `a` and `b` added (real, empty databases). */
async function twoDatabases(): Promise<{ rep: Replicator; dbs: TestDb[] }> {
  const dbs = await createDatabases(2);
  await sqlAll(dbs, 'CREATE TABLE public.good (id int PRIMARY KEY, v text)');
  const rep = newReplicator();
  await rep.addDatabase('a', dbs[0]!.url);
  await rep.addDatabase('b', dbs[1]!.url);
  return { rep, dbs };
}

describe('addSync validation', () => {
  it('rejects an unknown role, naming databases.<name>', async () => {
    const { rep } = await twoDatabases();
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
    const { rep } = await twoDatabases();
    const err = await caught(() => rep.addSync('s', { tables: [], databases: { a: 'source', b: 'target' }, autokick: false }));
    expectConfigInvalid(err, 'tables');
  });

  it('rejects a misspelled option, naming it', async () => {
    const { rep } = await twoDatabases();
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
    const { rep } = await twoDatabases();
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
    const { rep } = await twoDatabases();
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
    const { rep } = await twoDatabases();
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
    const { rep } = await twoDatabases();
    const err = await caught(() =>
      rep.addSync('s', { tables: ['good'], databases: { a: 'target', b: 'target' }, autokick: false }),
    );
    expectConfigInvalid(err, 'databases');
  });

  it('names every bad field at once', async () => {
    const { rep } = await twoDatabases();
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
    const { rep } = await twoDatabases();
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
    const [db] = await createDatabases(1);
    const rep = newReplicator();
    await rep.addDatabase('shopdb', db!.url);
    const err = await caught(() => rep.addDatabase('shopdb', db!.url));
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

/** Every string form of an error (and its causes) must be free of `secret`. */
function expectNoSecret(err: unknown, secret: string): void {
  const forms: string[] = [String(err), JSON.stringify(err), inspect(err, { depth: 6 })];
  let e: unknown = err;
  for (let i = 0; e && i < 8; i++) {
    if (e instanceof Error) forms.push(e.message, e.stack ?? '');
    e = (e as { cause?: unknown }).cause;
  }
  for (const f of forms) expect(f).not.toContain(secret);
}

describe('connection failures', () => {
  it('install and kick reject CONNECTION_FAILED without showing the password (connection string)', async () => {
    const [db] = await createDatabases(1);
    await db!.sql('CREATE TABLE public.good (id int PRIMARY KEY, v text)');
    const rep = newReplicator();
    await rep.addDatabase('down', 'postgres://app:sekret-pw@127.0.0.1:1/shop');
    await rep.addDatabase('up', db!.url);
    await rep.addSync('s', { tables: ['good'], databases: { down: 'source', up: 'target' }, autokick: false });

    const installErr = await caught(() => rep.install());
    expect(isPgferryError(installErr)).toBe(true);
    expect(installErr).toMatchObject({ code: 'CONNECTION_FAILED' });
    expect(installErr.message).toContain('down');
    expectNoSecret(installErr, 'sekret-pw');

    const kickErr = await caught(() => rep.kick('s'));
    expect(kickErr).toMatchObject({ code: 'CONNECTION_FAILED' });
    expectNoSecret(kickErr, 'sekret-pw');

    // Nothing was installed on the reachable database either.
    expect(await db!.sql(`SELECT 1 FROM pg_namespace WHERE nspname = 'pgferry'`)).toHaveLength(0);
  });

  it('install rejects CONNECTION_FAILED without showing the password (pool config)', async () => {
    const [db] = await createDatabases(1);
    await db!.sql('CREATE TABLE public.good (id int PRIMARY KEY, v text)');
    const rep = newReplicator();
    await rep.addDatabase('up', db!.url);
    await rep.addDatabase('down', { host: '127.0.0.1', port: 1, user: 'app', password: 'sekret-pw', database: 'shop' });
    await rep.addSync('s', { tables: ['good'], databases: { up: 'source', down: 'target' }, autokick: false });
    // Install works on sources; whether it also checks targets is the library's choice.
    const installErr = await rep.install().then(() => null, (e: PgferryError) => e);
    await db!.sql(`INSERT INTO public.good VALUES (1, 'x')`); // something to send
    const err = installErr ?? (await caught(() => rep.kick('s')));
    expect(isPgferryError(err)).toBe(true);
    expect(err).toMatchObject({ code: 'CONNECTION_FAILED' });
    expect(err.message).toContain('down');
    expectNoSecret(err, 'sekret-pw');
  });
});
