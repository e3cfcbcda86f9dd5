/**
 * The Postgres control store keeps conflict keys and rows exactly: bytea (and bytea[]) values
 * come back from conflicts() as Buffers, as the memory store gives them, not as JSON objects.
 */
import { expect, it } from 'vitest';
import { PostgresControlStore } from '../src/index.js';
import { createDatabases, sqlAll } from './helpers/db.js';
import { kick, stopReplicatorsAfterEach } from './helpers/replicators.js';
import { waitFor } from './helpers/wait.js';

const replicators = stopReplicatorsAfterEach();

it('PostgresControlStore: a conflict on a bytea key with bytea and bytea[] values round-trips exactly', async () => {
  const [a, b, control] = await createDatabases(3);
  await sqlAll([a!, b!], `CREATE TABLE t (k bytea PRIMARY KEY, v bytea, vs bytea[], n text);
                          INSERT INTO t VALUES ('\\x00ff'::bytea, '\\x01'::bytea, NULL, 'seed')`);
  const store = new PostgresControlStore({ connection: control!.url });
  const rep = await replicators.installed([a!, b!], { tables: ['t'], databases: { a: 'source', b: 'source' }, conflictStrategy: 'latest' }, { store });
  await kick(rep);
  await a!.sql(`UPDATE t SET v = '\\xdeadbeef'::bytea, vs = ARRAY['\\x00'::bytea, '\\x'::bytea], n = '{"type":"Buffer"}' WHERE k = '\\x00ff'::bytea`);
  await b!.sql(`UPDATE t SET v = '\\x'::bytea, n = 'b' WHERE k = '\\x00ff'::bytea`);
  expect((await kick(rep)).totals.conflicts).toBe(1);
  await waitFor('the conflict recorded', async () => (await rep.conflicts('s')).length > 0);
  const [c] = await rep.conflicts('s');
  expect(Buffer.isBuffer(c!.key['k'])).toBe(true);
  expect(c!.key).toEqual({ k: Buffer.from([0x00, 0xff]) });
  expect(c!.winner).toBe('b');
  expect(c!.rows).toEqual({
    a: { k: Buffer.from([0x00, 0xff]), v: Buffer.from('deadbeef', 'hex'), vs: [Buffer.from([0]), Buffer.alloc(0)], n: '{"type":"Buffer"}' },
    b: { k: Buffer.from([0x00, 0xff]), v: Buffer.alloc(0), vs: null, n: 'b' },
  });
  expect(Buffer.isBuffer((c!.rows['a'] as Record<string, unknown>)['v'])).toBe(true);
});
