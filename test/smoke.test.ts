import { expect, it } from 'vitest';
import { Replicator } from '../src/index.js';
import { createDatabases, sqlAll, tableContents } from './helpers/db.js';
it('one-way smoke', async () => {
  const [a, b] = await createDatabases(2);
  await sqlAll([a!, b!], 'CREATE TABLE t (id int primary key, v text)');
  const rep = new Replicator();
  try {
    await rep.addDatabase('a', a!.url); await rep.addDatabase('b', b!.url);
    await rep.addSync('s', { tables: ['t'], databases: { a: 'source', b: 'target' }, autokick: false });
    await rep.install();
    await a!.sql(`INSERT INTO t SELECT g, 'v'||g FROM generate_series(1,5) g`);
    await a!.sql(`UPDATE t SET id = 10 WHERE id = 1`);
    await a!.sql(`DELETE FROM t WHERE id = 2`);
    const r = await rep.kick('s');
    console.log(JSON.stringify(r));
    expect(await tableContents(b!, 't')).toEqual(await tableContents(a!, 't'));
    expect((await rep.kick('s')).status).toBe('empty');
  } finally { await rep.stop(); }
});
