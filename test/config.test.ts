/**
 * Connection failures never leak a password. (Configuration errors that need no server are in
 * unit/config.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { isPgferryError, type PgferryError } from '../src/index.js';
import { createDatabases } from './helpers/db.js';
import { caught, expectNoSecret } from './helpers/errors.js';
import { stopReplicatorsAfterEach } from './helpers/replicators.js';

const { create: newReplicator } = stopReplicatorsAfterEach();

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
