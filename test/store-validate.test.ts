import { expect, it } from 'vitest';
import { PostgresControlStore } from '../src/index.js';
import { createDatabases, sqlAll } from './helpers/db.js';
import { declareSync, stopReplicatorsAfterEach } from './helpers/replicators.js';
import { sleep } from './helpers/wait.js';

const replicators = stopReplicatorsAfterEach();

it('PostgresControlStore keeps run history in a database, across replicators', async () => {
  const [a, b, control] = await createDatabases(3);
  await sqlAll([a!, b!], 'CREATE TABLE t (id int PRIMARY KEY)');
  const make = () => declareSync(replicators.create({ store: new PostgresControlStore({ connection: control!.url }) }), [a!, b!], { tables: ['t'] });
  const rep1 = await make();
  await rep1.install();
  await a!.sql('INSERT INTO t SELECT generate_series(1, 5)');
  await rep1.kick('s');
  await rep1.kick('s');
  await rep1.stop();

  const rep2 = await make();
  await b!.sql('ALTER TABLE t RENAME TO t_gone');
  await a!.sql('INSERT INTO t VALUES (6)');
  await expect(rep2.kick('s')).rejects.toMatchObject({ code: 'TABLE_NOT_FOUND' });
  await rep2.stop(); // records are written in the background; stop() waits for them
  const runs = await rep2.store.runs('s');
  expect(runs.map((r) => [r.status, r.rows])).toEqual([['error', 0], ['empty', 0], ['ok', 5]]);
  expect(runs[0]!.error).toMatchObject({ code: 'TABLE_NOT_FOUND' });
  expect(await control!.sql('SELECT count(*)::int AS n FROM pgferry_control.runs')).toEqual([{ n: 3 }]);
});

it('installSql() shows the DDL without changing anything; status() reports the last run', async () => {
  const [a, b] = await createDatabases(2);
  await sqlAll([a!, b!], 'CREATE TABLE t (id int PRIMARY KEY, v text)');
  const rep = await declareSync(replicators.create(), [a!, b!], { tables: ['t'] });
  const ddl = await rep.installSql('s');
  expect(ddl).toMatch(/CREATE TRIGGER "pgferry_capture_ins" AFTER INSERT ON "public"\."t"/);
  expect(ddl).toMatch(/CREATE TRIGGER "pgferry_capture_trunc" AFTER TRUNCATE/);
  expect(await a!.sql(`SELECT 1 FROM pg_namespace WHERE nspname = 'pgferry'`)).toHaveLength(0);
  expect(rep.status().syncs[0]).toMatchObject({ name: 's', running: false, lastResult: null, lastError: null });
  await rep.install();
  await a!.sql(`INSERT INTO t VALUES (1, 'x')`);
  const r = await rep.kick('s');
  expect(rep.status().syncs[0]!.lastResult).toEqual(r);
});

it('stop() with a timeout rolls back a run in flight, which rejects STOPPED', async () => {
  const [a, b] = await createDatabases(2);
  await sqlAll([a!, b!], 'CREATE TABLE t (id int PRIMARY KEY, v text)');
  // The target's trigger makes the run slow enough to be cut short.
  await b!.sql(`CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(5); RETURN NEW; END $$;
                CREATE TRIGGER slow BEFORE INSERT ON t FOR EACH STATEMENT EXECUTE FUNCTION slow()`);
  const rep = await replicators.installed([a!, b!], { tables: ['t'] });
  await a!.sql(`INSERT INTO t SELECT g, 'v' FROM generate_series(1, 10) g`);
  const kick = rep.kick('s');
  kick.catch(() => undefined);
  await sleep(500);
  const t0 = Date.now();
  await rep.stop({ timeoutMs: 200 });
  expect(Date.now() - t0).toBeLessThan(4000);
  await expect(kick).rejects.toMatchObject({ code: 'STOPPED' });
  expect(await b!.sql('SELECT count(*)::int AS n FROM t')).toEqual([{ n: 0 }]);
  // Nothing was lost: a later kick delivers everything.
  await b!.sql('DROP TRIGGER slow ON t');
  expect((await rep.kick('s')).tables['public.t']).toMatchObject({ upserted: 10 });
});
