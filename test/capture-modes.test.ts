/**
 * The two capture shapes (sync option `capture`): statement-level triggers with transition
 * tables (the default) and row-level triggers. Each captures every kind of change the same
 * way; install() switches a table between them keeping its pending deltas, refuses two syncs
 * that disagree about a table, and brings older captures to the current version.
 */
import { describe, expect, it } from 'vitest';
import { connect, createDatabases, sqlAll, tableContents, type TestDb } from './helpers/db.js';
import { deltaTableName } from '../src/sql/names.js';
import { caught } from './helpers/errors.js';
import { declareSync, kick, stopReplicatorsAfterEach } from './helpers/replicators.js';

const replicators = stopReplicatorsAfterEach();
const MODES = ['row', 'statement'] as const;

/** 'ROW' or 'STATEMENT' for each capture trigger of public.t (tgtype bit 0). */
async function triggerLevels(db: TestDb): Promise<string[]> {
  const rows = await db.sql<{ tgname: string; level: string }>(
    `SELECT tgname, CASE WHEN tgtype::int & 1 = 1 THEN 'ROW' ELSE 'STATEMENT' END AS level
       FROM pg_trigger WHERE tgrelid = 'public.t'::regclass AND NOT tgisinternal ORDER BY tgname`,
  );
  return rows.map((r) => `${r.tgname}:${r.level}`);
}

describe.each(MODES)("capture '%s'", (mode) => {
  it('inserts, updates, deletes, key changes and swaps, savepoints and TRUNCATE arrive; a second run finds nothing', async () => {
    const [a, b] = await createDatabases(2);
    await sqlAll([a!, b!], `CREATE TABLE public.t (id int PRIMARY KEY, v text NOT NULL)`);
    const rep = await replicators.installed([a!, b!], { tables: ['public.t'], capture: mode });
    const level = mode.toUpperCase();
    expect(await triggerLevels(a!)).toEqual([`pgferry_capture_del:${level}`, `pgferry_capture_ins:${level}`, 'pgferry_capture_trunc:STATEMENT', `pgferry_capture_upd:${level}`]);
    await a!.sql(`INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 50) g`);
    expect((await kick(rep)).status).toBe('ok');
    await a!.sql(`BEGIN;
      UPDATE public.t SET v = 'changed' WHERE id <= 10;
      UPDATE public.t SET id = id + 1000 WHERE id BETWEEN 11 AND 15;
      UPDATE public.t SET id = -16 WHERE id = 16; UPDATE public.t SET id = 16 WHERE id = 17; UPDATE public.t SET id = 17 WHERE id = -16;
      DELETE FROM public.t WHERE id BETWEEN 20 AND 24;
      SAVEPOINT s; DELETE FROM public.t WHERE id = 30; UPDATE public.t SET v = 'lost' WHERE id = 31; ROLLBACK TO s;
      INSERT INTO public.t VALUES (500, 'new');
      COMMIT`);
    expect((await kick(rep)).status).toBe('ok');
    expect(await tableContents(b!, 'public.t')).toEqual(await tableContents(a!, 'public.t'));
    expect(await b!.sql(`SELECT id FROM public.t WHERE id IN (11, 1011, 20, 30) ORDER BY id`)).toEqual([{ id: 30 }, { id: 1011 }]);
    await a!.sql(`TRUNCATE public.t; INSERT INTO public.t VALUES (1, 'after truncate')`);
    expect((await kick(rep)).status).toBe('ok');
    expect(await tableContents(b!, 'public.t')).toEqual(['(1,"after truncate")']);
    expect((await kick(rep)).status).toBe('empty');
  });

  it('notifies once per writing transaction and table, also after a rolled-back savepoint, and not for a transaction that changed nothing', async () => {
    const [a, b] = await createDatabases(2);
    await sqlAll([a!, b!], `CREATE TABLE public.t (id int PRIMARY KEY, v text NOT NULL); CREATE TABLE public.u (id int PRIMARY KEY)`);
    await replicators.installed([a!, b!], { tables: ['public.t', 'public.u'], capture: mode });
    const listener = await connect(a!);
    const got: string[] = [];
    let sentinel: () => void = () => undefined;
    listener.on('notification', (n) => (n.payload === 'sentinel' ? sentinel() : got.push(n.payload ?? '')));
    await listener.query('LISTEN pgferry');
    /** What the listener got for `sql`, up to a later notification (they arrive in commit order). */
    const notified = async (sql: string): Promise<string[]> => {
      got.length = 0;
      await a!.sql(sql);
      await new Promise<void>((resolve) => {
        sentinel = resolve;
        void a!.sql(`NOTIFY pgferry, 'sentinel'`);
      });
      return [...got];
    };
    try {
      expect(await notified(`BEGIN; INSERT INTO public.t SELECT g, 'v' FROM generate_series(1, 20) g; UPDATE public.t SET v = 'w'; DELETE FROM public.t WHERE id = 1; INSERT INTO public.u VALUES (1); COMMIT`)).toEqual(['public.t', 'public.u']);
      expect(await notified(`BEGIN; SAVEPOINT s; UPDATE public.t SET v = 'x' WHERE id = 2; ROLLBACK TO s; UPDATE public.t SET v = 'y' WHERE id = 3; COMMIT`)).toEqual(['public.t']);
      expect(await notified(`BEGIN; SAVEPOINT s; UPDATE public.t SET v = 'x' WHERE id = 2; ROLLBACK TO s; COMMIT`)).toEqual([]);
      expect(await notified(`UPDATE public.t SET v = 'z' WHERE id = 4`)).toEqual(['public.t']);
    } finally {
      await listener.end();
    }
  });

  it('a partitioned table: rows moving between partitions, and a new partition attached after install()', async () => {
    const [a, b] = await createDatabases(2);
    await sqlAll([a!, b!], `CREATE TABLE public.t (id int PRIMARY KEY, v text NOT NULL) PARTITION BY RANGE (id);
      CREATE TABLE public.t_low PARTITION OF public.t FOR VALUES FROM (0) TO (1000);
      CREATE TABLE public.t_high PARTITION OF public.t FOR VALUES FROM (1000) TO (2000)`);
    const rep = await replicators.installed([a!, b!], { tables: ['public.t'], capture: mode });
    await a!.sql(`INSERT INTO public.t SELECT g, 'v' FROM generate_series(1, 1999, 7) g`);
    expect((await kick(rep)).status).toBe('ok');
    await sqlAll([a!, b!], `CREATE TABLE public.t_top PARTITION OF public.t FOR VALUES FROM (2000) TO (3000)`);
    await a!.sql(`UPDATE public.t SET id = id + 1000 WHERE id < 100 OR id BETWEEN 1500 AND 1600; DELETE FROM public.t WHERE id BETWEEN 500 AND 510`);
    expect((await kick(rep)).status).toBe('ok');
    expect(await tableContents(b!, 'public.t')).toEqual(await tableContents(a!, 'public.t'));
    expect(await b!.sql(`SELECT count(*)::int AS n FROM public.t_top`)).toEqual(await a!.sql(`SELECT count(*)::int AS n FROM public.t_top`));
  });

  it('multi-master: each side gets the other side\'s changes, and applied changes are not sent back', async () => {
    const [a, b] = await createDatabases(2);
    await sqlAll([a!, b!], `CREATE TABLE public.t (id int PRIMARY KEY, v text NOT NULL)`);
    const rep = await replicators.installed([a!, b!], { tables: ['public.t'], capture: mode, databases: { a: 'source', b: 'source' } });
    await a!.sql(`INSERT INTO public.t SELECT g, 'a' FROM generate_series(1, 20) g`);
    await b!.sql(`INSERT INTO public.t SELECT g, 'b' FROM generate_series(101, 120) g`);
    expect((await kick(rep)).status).toBe('ok');
    await a!.sql(`UPDATE public.t SET v = 'a2' WHERE id IN (1, 101)`);
    await b!.sql(`DELETE FROM public.t WHERE id = 2`);
    expect((await kick(rep)).status).toBe('ok');
    const contents = await tableContents(a!, 'public.t');
    expect(await tableContents(b!, 'public.t')).toEqual(contents);
    expect(contents).toHaveLength(39);
    // The rows the runs wrote were captured as applied by the sync: no run sends them back.
    // The second run's delete of 2 on a was captured there as applied by the sync (the first
    // run's deltas are pruned by now).
    const delta = `pgferry.${deltaTableName({ schema: 'public', name: 't' })}`;
    expect(await a!.sql(`SELECT id, applied_by IS NOT NULL AS applied FROM ${delta} ORDER BY id`)).toEqual([{ id: 2, applied: true }]);
    expect((await kick(rep)).status).toBe('empty');
  });
});

describe('switching and upgrading capture', () => {
  it('install() with the other shape replaces the triggers and keeps pending changes', async () => {
    const [a, b] = await createDatabases(2);
    await sqlAll([a!, b!], `CREATE TABLE public.t (id int PRIMARY KEY, v text NOT NULL)`);
    const first = await replicators.installed([a!, b!], { tables: ['public.t'], capture: 'statement' });
    expect(await triggerLevels(a!)).toEqual([
      'pgferry_capture_del:STATEMENT',
      'pgferry_capture_ins:STATEMENT',
      'pgferry_capture_trunc:STATEMENT',
      'pgferry_capture_upd:STATEMENT',
    ]);
    await a!.sql(`INSERT INTO public.t SELECT g, 'pending' FROM generate_series(1, 30) g`);
    await first.stop();
    const second = await replicators.installed([a!, b!], { tables: ['public.t'], capture: 'row' });
    expect(await triggerLevels(a!)).toEqual(['pgferry_capture_del:ROW', 'pgferry_capture_ins:ROW', 'pgferry_capture_trunc:STATEMENT', 'pgferry_capture_upd:ROW']);
    expect(await a!.sql(`SELECT capture_mode, capture_version FROM pgferry.captured`)).toEqual([{ capture_mode: 'row', capture_version: 4 }]);
    await a!.sql(`UPDATE public.t SET v = 'after' WHERE id <= 5`);
    expect((await kick(second)).status).toBe('ok');
    expect(await tableContents(b!, 'public.t')).toEqual(await tableContents(a!, 'public.t'));
    expect(await b!.sql(`SELECT count(*)::int AS n FROM public.t`)).toEqual([{ n: 30 }]);
  });

  it('an older capture (version 3, statement-level) still runs, and install() brings it to version 4', async () => {
    const [a, b] = await createDatabases(2);
    await sqlAll([a!, b!], `CREATE TABLE public.t (id int PRIMARY KEY, v text NOT NULL)`);
    const rep = await replicators.installed([a!, b!], { tables: ['public.t'], capture: 'statement' });
    await a!.sql(`UPDATE pgferry.captured SET capture_version = 3`);
    await a!.sql(`INSERT INTO public.t VALUES (1, 'x')`);
    expect((await kick(rep)).status).toBe('ok');
    await rep.install();
    expect(await a!.sql(`SELECT capture_mode, capture_version FROM pgferry.captured`)).toEqual([{ capture_mode: 'statement', capture_version: 4 }]);
    expect(await tableContents(b!, 'public.t')).toEqual(['(1,x)']);
  });

  it('a library schema of the previous release (version 4) keeps running; install() migrates it and brings its capture to version 4', async () => {
    const [a, b] = await createDatabases(2);
    await sqlAll([a!, b!], `CREATE TABLE public.t (id int PRIMARY KEY, v text NOT NULL)`);
    const rep = await replicators.installed([a!, b!], { tables: ['public.t'], capture: 'statement' });
    await a!.sql(`ALTER TABLE pgferry.captured DROP COLUMN capture_mode; ALTER TABLE pgferry.sync_tables DROP COLUMN capture; UPDATE pgferry.version SET version = 4; UPDATE pgferry.captured SET capture_version = 3`);
    await a!.sql(`INSERT INTO public.t VALUES (1, 'before the upgrade')`);
    expect((await kick(rep)).status).toBe('ok');
    await rep.stop();
    const upgraded = await replicators.installed([a!, b!], { tables: ['public.t'] });
    expect(await a!.sql(`SELECT max(version) AS v FROM pgferry.version`)).toEqual([{ v: 5 }]);
    expect(await a!.sql(`SELECT capture_mode, capture_version FROM pgferry.captured`)).toEqual([{ capture_mode: 'statement', capture_version: 4 }]);
    expect(await triggerLevels(a!)).toEqual(['pgferry_capture_del:STATEMENT', 'pgferry_capture_ins:STATEMENT', 'pgferry_capture_trunc:STATEMENT', 'pgferry_capture_upd:STATEMENT']);
    await a!.sql(`UPDATE public.t SET v = 'after the upgrade'`);
    expect((await kick(upgraded)).status).toBe('ok');
    expect(await tableContents(b!, 'public.t')).toEqual(['(1,"after the upgrade")']);
  });

  it('two syncs of the previous release sharing a table switch together to another shape', async () => {
    const [a, b] = await createDatabases(2);
    await sqlAll([a!, b!], `CREATE TABLE public.t (id int PRIMARY KEY, v text NOT NULL)`);
    const old = replicators.create();
    await old.addDatabase('a', a!.url);
    await old.addDatabase('b', b!.url);
    for (const name of ['one', 'two']) await old.addSync(name, { tables: ['public.t'], databases: { a: 'source', b: 'target' }, autokick: false, capture: 'statement' });
    await old.install();
    await old.stop();
    // As the previous release left it: no shapes recorded, capture version 3, schema version 4.
    await a!.sql(`ALTER TABLE pgferry.sync_tables DROP COLUMN capture; ALTER TABLE pgferry.captured DROP COLUMN capture_mode;
                  UPDATE pgferry.captured SET capture_version = 3; UPDATE pgferry.version SET version = 4`);
    const rep = replicators.create();
    await rep.addDatabase('a', a!.url);
    await rep.addDatabase('b', b!.url);
    for (const name of ['one', 'two']) await rep.addSync(name, { tables: ['public.t'], databases: { a: 'source', b: 'target' }, autokick: false, capture: 'row' });
    await rep.install('one');
    await rep.install('two');
    expect(await triggerLevels(a!)).toEqual(['pgferry_capture_del:ROW', 'pgferry_capture_ins:ROW', 'pgferry_capture_trunc:STATEMENT', 'pgferry_capture_upd:ROW']);
    expect(await a!.sql(`SELECT sync, capture FROM pgferry.sync_tables ORDER BY sync`)).toEqual([
      { sync: 'one', capture: 'row' },
      { sync: 'two', capture: 'row' },
    ]);
  });

  it('install() of syncs that disagree about a table, all at once, is refused before anything is created', async () => {
    const [a, b] = await createDatabases(2);
    await sqlAll([a!, b!], `CREATE TABLE public.t (id int PRIMARY KEY, v text NOT NULL)`);
    const rep = replicators.create();
    await rep.addDatabase('a', a!.url);
    await rep.addDatabase('b', b!.url);
    await rep.addSync('oltp', { tables: ['public.t'], databases: { a: 'source', b: 'target' }, autokick: false, capture: 'row' });
    await rep.addSync('etl', { tables: ['public.t'], databases: { a: 'source', b: 'target' }, autokick: false, capture: 'statement' });
    const err = await caught(rep.install());
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toBe(`Table public.t is captured with capture 'row' for sync "oltp"; sync "etl" asks for 'statement'. Give every sync of the table the same capture.`);
    expect(await a!.sql(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'pgferry'`)).toEqual([{ n: 0 }]);
  });

  it('two syncs that disagree about a table: the second install is refused, naming both, and changes nothing', async () => {
    const [a, b] = await createDatabases(2);
    await sqlAll([a!, b!], `CREATE TABLE public.t (id int PRIMARY KEY, v text NOT NULL)`);
    await replicators.installed([a!, b!], { tables: ['public.t'], capture: 'row' });
    const other = replicators.create();
    await other.addDatabase('a', a!.url);
    await other.addDatabase('b', b!.url);
    await other.addSync('bulk', { tables: ['public.t'], databases: { a: 'source', b: 'target' }, capture: 'statement' });
    const err = await caught(other.install('bulk'));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toBe(
      `Table public.t on database "a" is captured with capture 'row' for sync "s"; sync "bulk" asks for 'statement'. Give every sync of the table the same capture.`,
    );
    expect(await triggerLevels(a!)).toEqual(['pgferry_capture_del:ROW', 'pgferry_capture_ins:ROW', 'pgferry_capture_trunc:STATEMENT', 'pgferry_capture_upd:ROW']);
    expect(await a!.sql(`SELECT sync FROM pgferry.sync_tables ORDER BY sync`)).toEqual([{ sync: 's' }]);
  });

  it('two instances installing and running the same config at once capture once and deliver once', async () => {
    const [a, b] = await createDatabases(2);
    await sqlAll([a!, b!], `CREATE TABLE public.t (id int PRIMARY KEY, v text NOT NULL)`);
    const reps = [replicators.create(), replicators.create()];
    for (const rep of reps) await declareSync(rep, [a!, b!], { tables: ['public.t'], capture: 'row' });
    await Promise.all(reps.map((rep) => rep.install()));
    expect(await triggerLevels(a!)).toEqual(['pgferry_capture_del:ROW', 'pgferry_capture_ins:ROW', 'pgferry_capture_trunc:STATEMENT', 'pgferry_capture_upd:ROW']);
    await a!.sql(`INSERT INTO public.t SELECT g, 'v' FROM generate_series(1, 1000) g`);
    await a!.sql(`UPDATE public.t SET id = id + 5000 WHERE id % 7 = 0`);
    const results = await Promise.all(reps.map((rep) => kick(rep)));
    // One delivers; the other, serialized behind it by the sync's lock, finds nothing left.
    expect(results.map((r) => r.status).sort()).toEqual(['empty', 'ok']);
    expect(await tableContents(b!, 'public.t')).toEqual(await tableContents(a!, 'public.t'));
  });
});
