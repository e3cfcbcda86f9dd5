/**
 * The run's round trips (issue 12): a target's write transaction opens while the sources are
 * read, the lone target's fence goes with its COMMIT, and the source's watermark with its
 * COMMIT. Each shortcut keeps what the long way guaranteed: a failure anywhere leaves no
 * transaction open, applies nothing that is not fenced, and keeps every change pending.
 */
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import pg from 'pg';
import { isPgferryError, type Replicator } from '../src/index.js';
import { deltaTableName } from '../src/sql/names.js';
import { connect, createDatabases, sqlAll, tableContents, type TestDb } from './helpers/db.js';
import { caught } from './helpers/errors.js';
import { kick, stopReplicatorsAfterEach } from './helpers/replicators.js';
import { waitFor, within } from './helpers/wait.js';

const replicators = stopReplicatorsAfterEach();
const DDL = `CREATE TABLE public.t (id int PRIMARY KEY, v text NOT NULL)`;

/** pgferry's backends on `db` and what they are doing. */
async function pgferryBackends(db: TestDb): Promise<{ state: string; wait: string | null }[]> {
  return db.sql(
    `SELECT state, wait_event_type AS wait FROM pg_stat_activity
      WHERE datname = current_database() AND application_name = 'pgferry' AND pid <> pg_backend_pid()`,
  );
}

/** Sync `s` on t, a → b, installed; b through a caller-owned pool of one connection. */
async function targetWithPoolOfOne(): Promise<{ a: TestDb; b: TestDb; pool: pg.Pool; rep: Replicator }> {
  const [a, b] = (await createDatabases(2)) as [TestDb, TestDb];
  await sqlAll([a, b], DDL);
  const pool = new pg.Pool({ connectionString: b.url, max: 1 });
  const rep = replicators.create({ connectionTimeoutMs: 10_000 });
  await rep.addDatabase('a', a.url);
  await rep.addDatabase('b', { pool });
  await rep.addSync('s', { tables: ['t'], databases: { a: 'source', b: 'target' }, autokick: false });
  await rep.install();
  return { a, b, pool, rep };
}

describe('the run pipeline', () => {
  it("the target's transaction opens while the source is read; a run that fails there leaves it rolled back, with no fence", async () => {
    const [a, b] = (await createDatabases(2)) as [TestDb, TestDb];
    await sqlAll([a, b], DDL);
    const rep = await replicators.installed([a, b], { tables: ['t'] });
    await a.sql(`INSERT INTO t VALUES (1, 'one')`);
    // The run stops at the source's delta table, locked by someone else.
    const locker = await connect(a);
    await locker.query(`BEGIN; LOCK TABLE pgferry.${deltaTableName({ schema: 'public', name: 't' })} IN ACCESS EXCLUSIVE MODE`);
    const run = rep.kick('s').then(
      () => null,
      (e: unknown) => e,
    );
    await waitFor('the run waiting on the source', async () => (await pgferryBackends(a)).some((x) => x.wait === 'Lock'));
    // Meanwhile its target transaction is open already.
    await waitFor('the target transaction open', async () => (await pgferryBackends(b)).some((x) => x.state === 'idle in transaction'));
    await a.sql(`SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pgferry' AND wait_event_type = 'Lock'`);
    const err = await run;
    expect(isPgferryError(err)).toBe(true);
    expect((err as Error).message).toMatch(/canceling statement due to user request/);
    await locker.query('ROLLBACK');
    await locker.end();
    // Nothing of the run stays on the target: no open transaction, no fence, no row.
    expect((await pgferryBackends(b)).filter((x) => x.state !== 'idle')).toEqual([]);
    expect(await b.sql(`SELECT sync FROM pgferry.fences`)).toEqual([]);
    expect(await tableContents(b, 'public.t')).toEqual([]);
    // The change is still pending.
    expect((await kick(rep)).tables['public.t']).toMatchObject({ upserted: 1 });
    expect(await tableContents(b, 'public.t')).toEqual(['(1,one)']);
  });

  it('a target without the library schema fails the run NOT_INSTALLED naming it, before anything commits; the changes stay pending', async () => {
    const [a, b] = (await createDatabases(2)) as [TestDb, TestDb];
    await sqlAll([a, b], DDL);
    const rep = await replicators.installed([a, b], { tables: ['t'] });
    await b.sql(`DROP SCHEMA pgferry CASCADE`);
    await a.sql(`INSERT INTO t VALUES (1, 'one'), (2, 'two')`);
    const err = await caught(rep.kick('s'));
    expect(err.code).toBe('NOT_INSTALLED');
    expect(err.message).toBe(`Sync "s" is not installed on receiving database "b" (the pgferry schema "pgferry" with its fences is not there). Call install('s') first.`);
    expect(await tableContents(b, 'public.t')).toEqual([]);
    expect((await pgferryBackends(b)).filter((x) => x.state !== 'idle')).toEqual([]);
    expect((await pgferryBackends(a)).filter((x) => x.state !== 'idle')).toEqual([]);
    await rep.install();
    expect((await kick(rep)).tables['public.t']).toMatchObject({ upserted: 2 });
    expect(await tableContents(b, 'public.t')).toEqual(['(1,one)', '(2,two)']);
  });

  it("a watermark that cannot be written fails the run, the source's transaction rolls back, and the changes are read again", async () => {
    const [a, b] = (await createDatabases(2)) as [TestDb, TestDb];
    await sqlAll([a, b], DDL);
    const rep = await replicators.installed([a, b], { tables: ['t'] });
    await a.sql(`INSERT INTO t VALUES (1, 'one')`);
    await kick(rep);
    await a.sql(`CREATE FUNCTION no_marks() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'watermarks are frozen'; END $$;
                 CREATE TRIGGER no_marks BEFORE INSERT OR UPDATE ON pgferry.watermark FOR EACH ROW EXECUTE FUNCTION no_marks()`);
    await a.sql(`UPDATE t SET v = 'changed' WHERE id = 1`);
    await a.sql(`INSERT INTO t VALUES (2, 'two')`);
    const err = await caught(rep.kick('s'));
    expect(err.code).toBe('RUN_FAILED');
    expect(err.message).toMatch(/watermarks are frozen/);
    // The target committed before the watermark: its rows are there, and nothing is open.
    expect(await tableContents(b, 'public.t')).toEqual(['(1,changed)', '(2,two)']);
    expect((await pgferryBackends(a)).filter((x) => x.state !== 'idle')).toEqual([]);
    await a.sql(`DROP TRIGGER no_marks ON pgferry.watermark`);
    // Not delivered as far as the source knows: the same changes again (idempotent), then none.
    expect((await kick(rep)).tables['public.t']).toMatchObject({ upserted: 2, deleted: 0 });
    expect(await tableContents(b, 'public.t')).toEqual(await tableContents(a, 'public.t'));
    expect((await kick(rep)).status).toBe('empty');
  });
  it('rows that arrive new, then change, then arrive new again: the target matches the source after every run', async () => {
    const [a, b] = (await createDatabases(2)) as [TestDb, TestDb];
    await sqlAll([a, b], DDL);
    const rep = await replicators.installed([a, b], { tables: ['t'] });
    const check = async (upserted: number) => {
      expect((await kick(rep)).tables['public.t']).toMatchObject({ upserted, deleted: 0 });
      expect(await tableContents(b, 'public.t')).toEqual(await tableContents(a, 'public.t'));
    };
    // New rows: the UPDATE finds none.
    for (let round = 0; round < 3; round++) {
      await a.sql(`INSERT INTO t SELECT g, 'new ' || g FROM generate_series($1::int, $1::int + 299) g`, [round * 300 + 1]);
      await check(300);
    }
    // Now they change, many and a few.
    await a.sql(`UPDATE t SET v = 'changed ' || id WHERE id <= 500`);
    await check(500);
    await a.sql(`UPDATE t SET v = 'again ' || id WHERE id % 7 = 0`);
    await check(128);
    await a.sql(`INSERT INTO t SELECT g, 'late ' || g FROM generate_series(1001, 1300) g`);
    await a.sql(`UPDATE t SET v = 'mixed' WHERE id BETWEEN 1 AND 100`);
    await check(400);
  });
  it('staged rows are counted on the way in: the counts statement runs only for a gone row, and up to 100 rows the UPDATE and INSERT share a round trip', async () => {
    const [a, b] = (await createDatabases(2)) as [TestDb, TestDb];
    await sqlAll([a, b], DDL);
    const rep = await replicators.installed([a, b], { tables: ['t'] });
    await a.sql(`INSERT INTO t SELECT g, 'first ' || g FROM generate_series(1, 3) g`);
    await kick(rep);
    // What pgferry sends to apply and count, run by run.
    let sent: string[] = [];
    const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
    const query = proto.query;
    proto.query = function (this: pg.Client, ...args: unknown[]) {
      const text = typeof args[0] === 'string' ? args[0] : ((args[0] as { text?: string } | undefined)?.text ?? '');
      if (/^\s*(UPDATE|INSERT INTO) "public"\."t"|count\(\*\) FILTER \(WHERE pgferry_present\)/.test(text)) sent.push(text);
      return query.apply(this, args);
    };
    onTestFinished(() => {
      proto.query = query;
    });
    const counted = () => sent.filter((x) => x.includes('count(*) FILTER (WHERE pgferry_present)')).length;
    const together = () => sent.filter((x) => /UPDATE "public"\."t"[\s\S]*;\s*INSERT INTO "public"\."t"/.test(x)).length;
    const run = async (expected: { upserted: number; deleted: number }) => {
      sent = [];
      expect((await kick(rep)).tables['public.t']).toMatchObject(expected);
      expect(await tableContents(b, 'public.t')).toEqual(await tableContents(a, 'public.t'));
    };

    // A new row and a changed one: counted on the way, one round trip for both statements.
    await a.sql(`INSERT INTO t VALUES (4, 'new'); UPDATE t SET v = 'changed' WHERE id = 1`);
    await run({ upserted: 2, deleted: 0 });
    expect({ counted: counted(), together: together(), statements: sent.length }).toEqual({ counted: 0, together: 1, statements: 1 });

    // A row gone at the source: only the counts statement can tell whether the target has it.
    await a.sql(`DELETE FROM t WHERE id = 2`);
    await run({ upserted: 0, deleted: 1 });
    expect(counted()).toBe(1);

    // More than 100 rows: the UPDATE, then the INSERT of the missing ones, one after the other.
    await a.sql(`INSERT INTO t SELECT g, 'bulk ' || g FROM generate_series(100, 249) g; UPDATE t SET v = 'again' WHERE id = 3`);
    await run({ upserted: 151, deleted: 0 });
    expect({ counted: counted(), together: together(), statements: sent.length }).toEqual({ counted: 0, together: 0, statements: 2 });
  });

  it('pools of one: a one-way run with a first copy and a sequence, then an empty run, each with one connection per database', async () => {
    const [a, b] = (await createDatabases(2)) as [TestDb, TestDb];
    await sqlAll([a, b], `${DDL}; CREATE SEQUENCE t_seq`);
    const rep = replicators.create({ connectionTimeoutMs: 2_000 });
    await rep.addDatabase('a', { connectionString: a.url, max: 1 });
    await rep.addDatabase('b', { connectionString: b.url, max: 1 });
    await rep.addSync('s', { tables: ['t', 't_seq'], databases: { a: 'source', b: 'target' }, onetimecopy: 'ifEmpty', autokick: false });
    await a.sql(`INSERT INTO t SELECT g, 'v' FROM generate_series(1, 20) g; SELECT setval('t_seq', 42)`);
    await rep.install();
    expect((await kick(rep)).tables['public.t']).toMatchObject({ upserted: 20 });
    expect(await b.sql(`SELECT last_value::int AS v FROM t_seq`)).toEqual([{ v: 42 }]);
    await rep.addSync('plain', { tables: ['t', 't_seq'], databases: { a: 'source', b: 'target' }, autokick: false });
    await rep.install('plain');
    const empty = await kick(rep, 'plain');
    expect(empty.totals).toEqual({ upserted: 0, deleted: 0, conflicts: 0 });
    await a.sql(`UPDATE t SET v = 'w' WHERE id = 1`);
    expect((await kick(rep, 'plain')).tables['public.t']).toMatchObject({ upserted: 1 });
    expect(await tableContents(b, 'public.t')).toEqual(await tableContents(a, 'public.t'));
  });

  it("a target that kills idle transactions sooner than the source is read: the run opens another and applies", async () => {
    const [a, b] = (await createDatabases(2)) as [TestDb, TestDb];
    await sqlAll([a, b], DDL);
    await b.sql(`ALTER DATABASE ${b.name} SET idle_in_transaction_session_timeout = '1s'`);
    const rep = await replicators.installed([a, b], { tables: ['t'] });
    await a.sql(`INSERT INTO t VALUES (1, 'one')`);
    const locker = await connect(a);
    await locker.query(`BEGIN; LOCK TABLE pgferry.${deltaTableName({ schema: 'public', name: 't' })} IN ACCESS EXCLUSIVE MODE`);
    const run = rep.kick('s');
    await waitFor('the run waiting on the source', async () => (await pgferryBackends(a)).some((x) => x.wait === 'Lock'));
    // The target transaction opened early, and the target's timeout ended it.
    const idleInTx = async () => (await pgferryBackends(b)).filter((x) => x.state === 'idle in transaction').length;
    await waitFor('the early target transaction opened', async () => (await idleInTx()) === 1);
    await waitFor('the early target transaction killed', async () => (await idleInTx()) === 0);
    await locker.query('ROLLBACK');
    await locker.end();
    expect((await run).tables['public.t']).toMatchObject({ upserted: 1 });
    expect(await tableContents(b, 'public.t')).toEqual(['(1,one)']);
  });

  it('a run with nothing to apply does not wait for a target whose pool is busy', async () => {
    const { a, pool, rep } = await targetWithPoolOfOne();
    const busy = await pool.connect();
    try {
      const t0 = Date.now();
      expect((await rep.kick('s')).status).toBe('empty');
      expect(Date.now() - t0).toBeLessThan(2_000);
    } finally {
      busy.release();
    }
    // The early transaction got its connection once the pool had one, and gave it back.
    await a.sql(`INSERT INTO t VALUES (1, 'one')`);
    expect((await rep.kick('s')).tables['public.t']).toMatchObject({ upserted: 1 });
    await rep.stop();
    await pool.end();
  });
  it('a sync of 60 tables (two statements of changed keys and of staged counts): changes and a TRUNCATE past the first 50 arrive', async () => {
    const [a, b] = (await createDatabases(2)) as [TestDb, TestDb];
    const names = Array.from({ length: 60 }, (_, i) => `m${i + 1}`);
    await sqlAll([a, b], names.map((n) => `CREATE TABLE public.${n} (id int PRIMARY KEY, v text NOT NULL);`).join(' '));
    await a.sql(`INSERT INTO m55 VALUES (1, 'before')`);
    await b.sql(`INSERT INTO m55 VALUES (1, 'before')`);
    const rep = await replicators.installed([a, b], { tables: names });
    await a.sql(`INSERT INTO m1 VALUES (1, 'one'); INSERT INTO m50 VALUES (50, 'fifty'); INSERT INTO m51 VALUES (51, 'fifty-one');
                 INSERT INTO m60 VALUES (60, 'sixty'), (61, 'more'); TRUNCATE m55; INSERT INTO m55 VALUES (2, 'after')`);
    const r = await kick(rep);
    expect(r.tables['public.m1']).toMatchObject({ upserted: 1 });
    expect(r.tables['public.m51']).toMatchObject({ upserted: 1 });
    expect(r.tables['public.m60']).toMatchObject({ upserted: 2 });
    expect(r.tables['public.m2']).toMatchObject({ upserted: 0, deleted: 0 });
    for (const n of names) expect(await tableContents(b, `public.${n}`), n).toEqual(await tableContents(a, `public.${n}`));
    expect(await tableContents(b, 'public.m55')).toEqual(['(2,after)']);
  });
  it('stop() waits for a target transaction still being opened when its run ended, and that gives its connection back', async () => {
    const { b, pool, rep } = await targetWithPoolOfOne();
    const busy = await pool.connect();
    try {
      expect((await rep.kick('s')).status).toBe('empty');
      // The run is over; its early target transaction still waits for the pool.
      await waitFor('the early transaction waiting for the pool', () => pool.waitingCount === 1);
      const stopped = rep.stop();
      expect(await within(stopped, 300)).toBeNull();
      busy.release();
      await stopped;
      expect(pool.totalCount - pool.idleCount).toBe(0);
      expect((await pgferryBackends(b)).filter((x) => x.state !== 'idle')).toEqual([]);
    } finally {
      await pool.end();
    }
  });

  it('background runs prune delivered deltas at most once a second per source; a kick prunes every time', async () => {
    const [a, b] = (await createDatabases(2)) as [TestDb, TestDb];
    await sqlAll([a, b], DDL);
    const rep = await replicators.installed([a, b], { tables: ['t'], autokick: true });
    const deltas = async () => (await a.sql<{ n: number }>(`SELECT count(*)::int AS n FROM pgferry.${deltaTableName({ schema: 'public', name: 't' })}`))[0]!.n;
    let runs = 0;
    rep.on('sync:complete', () => runs++);
    // The clock stands still (only Date: timers and the servers run on).
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(new Date('2030-01-01T00:00:00Z'));
      await rep.start();
      await waitFor('the catch-up run at start (it prunes, and notes the time)', () => runs >= 1);
      await a.sql(`INSERT INTO t VALUES (1, 'one')`);
      await waitFor('row 1 on the target', async () => (await tableContents(b, 'public.t')).length === 1);
      await rep.stop(); // waits for the runs' housekeeping
      expect(await deltas()).toBe(1); // the same second: not pruned
      vi.setSystemTime(new Date('2030-01-01T00:00:01.001Z'));
      const before = runs;
      await rep.start();
      await waitFor('the catch-up run a second later', () => runs > before);
      await rep.stop();
      expect(await deltas()).toBe(0);
      await a.sql(`INSERT INTO t VALUES (2, 'two')`);
      expect((await kick(rep)).tables['public.t']).toMatchObject({ upserted: 1 });
      await rep.stop();
      expect(await deltas()).toBe(0); // a kick in the same second prunes
    } finally {
      vi.useRealTimers();
    }
  });
});
