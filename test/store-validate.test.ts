import { expect, it } from 'vitest';
import { PostgresControlStore, Replicator } from '../src/index.js';
import { createDatabases, sqlAll } from './helpers/db.js';

it('validate() lists keys that differ or are missing, and says equal once replicated', async () => {
  const [a, b] = await createDatabases(2);
  await sqlAll([a!, b!], 'CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE nokey (x int)');
  const rep = new Replicator();
  try {
    await rep.addDatabase('a', a!.url);
    await rep.addDatabase('b', b!.url);
    await rep.addSync('s', { tables: ['t'], databases: { a: 'source', b: 'target' }, autokick: false });
    await rep.install();
    await a!.sql(`INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three')`);
    await b!.sql(`INSERT INTO t VALUES (2, 'TWO'), (4, 'four')`);
    const before = await rep.validate('s');
    expect(before.equal).toBe(false);
    const t = before.tables['public.t']!;
    expect(t.rows).toEqual({ a: 3, b: 2 });
    expect(t.differences).toEqual([
      { key: { id: 1 }, missingOn: ['b'], differsOn: [] },
      { key: { id: 2 }, missingOn: [], differsOn: ['b'] },
      { key: { id: 3 }, missingOn: ['b'], differsOn: [] },
      { key: { id: 4 }, missingOn: ['a'], differsOn: [] },
    ]);
    await rep.kick('s');
    await b!.sql(`DELETE FROM t WHERE id = 4`);
    const after = await rep.validate('s');
    expect(after).toMatchObject({ sync: 's', equal: true, tables: { 'public.t': { rows: { a: 3, b: 3 }, differences: [] } } });
  } finally {
    await rep.stop();
  }
});

it('PostgresControlStore keeps run history in a database, across replicators', async () => {
  const [a, b, control] = await createDatabases(3);
  await sqlAll([a!, b!], 'CREATE TABLE t (id int PRIMARY KEY)');
  const make = async () => {
    const rep = new Replicator({ store: new PostgresControlStore({ connection: control!.url }) });
    await rep.addDatabase('a', a!.url);
    await rep.addDatabase('b', b!.url);
    await rep.addSync('s', { tables: ['t'], databases: { a: 'source', b: 'target' }, autokick: false });
    return rep;
  };
  const rep1 = await make();
  try {
    await rep1.install();
    await a!.sql('INSERT INTO t SELECT generate_series(1, 5)');
    await rep1.kick('s');
    await rep1.kick('s');
  } finally {
    await rep1.stop();
  }
  const rep2 = await make();
  try {
    await b!.sql('ALTER TABLE t RENAME TO t_gone');
    await a!.sql('INSERT INTO t VALUES (6)');
    await expect(rep2.kick('s')).rejects.toMatchObject({ code: 'TABLE_NOT_FOUND' });
    await rep2.stop(); // records are written in the background; stop() waits for them
    const runs = await rep2.store.runs('s');
    expect(runs.map((r) => [r.status, r.rows])).toEqual([['error', 0], ['empty', 0], ['ok', 5]]);
    expect(runs[0]!.error).toMatchObject({ code: 'TABLE_NOT_FOUND' });
    expect(await control!.sql('SELECT count(*)::int AS n FROM pgferry_control.runs')).toEqual([{ n: 3 }]);
  } finally {
    await rep2.stop();
  }
});
