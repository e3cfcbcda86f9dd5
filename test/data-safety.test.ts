/**
 * Data safety (issue 11): a write committed on a source while a run applies there is not
 * overwritten; a first copy in a multi-master sync keeps the other sources' changes; one
 * connection per database is enough for a run, and a busy pool is never waited for forever;
 * an onException retry writes the right origin after its savepoint was rolled back.
 */
import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { isPgferryError, type RowsAppliedEvent } from '../src/index.js';
import { connect, createDatabases, sqlAll, tableContents, type TestDb } from './helpers/db.js';
import { kick, stopReplicatorsAfterEach } from './helpers/replicators.js';
import { waitFor } from './helpers/wait.js';

const replicators = stopReplicatorsAfterEach();
const DDL = `CREATE TABLE public.t (id int PRIMARY KEY, v text NOT NULL)`;

describe('data safety', () => {
  /**
   * Two sources, 'latest': a updates both rows, then an application on b holds `write` open
   * while the run comes to write there, and commits it. Returns what every database holds
   * after that run (b) and after the next one (a, b), and the status of the run after.
   */
  async function writeDuringRun(write: string): Promise<{ b1: string[]; a2: string[]; b2: string[]; last: string }> {
    const dbs = await createDatabases(2);
    const [a, b] = dbs as [TestDb, TestDb];
    await sqlAll(dbs, `${DDL}; INSERT INTO t VALUES (1, 'start'), (2, 'start')`);
    const rep = await replicators.installed(dbs, { tables: ['t'], databases: { a: 'source', b: 'source' }, conflictStrategy: 'latest' });
    await a.sql(`UPDATE t SET v = 'a-new'`);
    const app = await connect(b);
    await app.query(`BEGIN; ${write}`);
    const run = rep.kick('s');
    await waitFor('the run waiting for the application on b', async () => (await b.sql(
      `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pgferry' AND wait_event_type = 'Lock'`,
    )).length === 1);
    await app.query('COMMIT');
    await app.end();
    expect((await run).status).toBe('ok');
    const b1 = await tableContents(b, 'public.t');
    await kick(rep);
    return { b1, a2: await tableContents(a, 'public.t'), b2: await tableContents(b, 'public.t'), last: (await kick(rep)).status };
  }

  it("a write committed on a source while the run writes there keeps its value: 'latest' keeps it everywhere", async () => {
    // Row 2 arrives; row 1 keeps b's later write, which the next run carries to a.
    const after = ['(1,b-later)', '(2,a-new)'];
    expect(await writeDuringRun(`UPDATE t SET v = 'b-later' WHERE id = 1`)).toEqual({ b1: after, a2: after, b2: after, last: 'empty' });
  });

  it('a row an application deletes on a source while the run writes there stays deleted, there and everywhere', async () => {
    const after = ['(2,a-new)'];
    expect(await writeDuringRun(`DELETE FROM t WHERE id = 1`)).toEqual({ b1: after, a2: after, b2: after, last: 'empty' });
  });

  it('multi-master with onetimecopy to a target: the changes of every source reach it', async () => {
    const dbs = await createDatabases(3);
    const [a, b, c] = dbs as [TestDb, TestDb, TestDb];
    await sqlAll(dbs, DDL);
    await sqlAll([a, b], `INSERT INTO t SELECT g, 'seed ' || g FROM generate_series(1, 50) g`);
    const rep = await replicators.installed(dbs, { tables: ['t'], databases: { a: 'source', b: 'source', c: 'target' }, onetimecopy: 'always' });
    await b.sql(`INSERT INTO t VALUES (100, 'new on b')`);
    await b.sql(`UPDATE t SET v = 'changed on b' WHERE id IN (3, 4)`);
    await a.sql(`INSERT INTO t VALUES (200, 'new on a')`);
    await b.sql(`DELETE FROM t WHERE id = 5`);
    const r = await kick(rep);
    expect(r.status).toBe('ok');
    const want = await tableContents(a, 'public.t');
    expect(want).toContain('(100,"new on b")');
    expect(want).toContain('(3,"changed on b")');
    expect(want).not.toContain('(5,"seed 5")');
    expect(await tableContents(b, 'public.t')).toEqual(want);
    expect(await tableContents(c, 'public.t')).toEqual(want);
  });

  it('a first copy into a target listed before the sources, with a TRUNCATE on the second source: all converge', async () => {
    const dbs = await createDatabases(3);
    const [c, a, b] = dbs as [TestDb, TestDb, TestDb];
    await sqlAll(dbs, DDL);
    await sqlAll([a, b], `INSERT INTO t SELECT g, 'seed' FROM generate_series(1, 20) g`);
    const rep = await replicators.installed(dbs, { tables: ['t'], databases: { c: 'target', a: 'source', b: 'source' }, onetimecopy: 'always' });
    await b.sql(`TRUNCATE t`);
    await b.sql(`INSERT INTO t VALUES (100, 'after the truncate')`);
    await kick(rep);
    const want = await tableContents(a, 'public.t');
    expect(want).toEqual(['(100,"after the truncate")']);
    expect(await tableContents(b, 'public.t')).toEqual(want);
    expect(await tableContents(c, 'public.t')).toEqual(want);
  });

  it('pools of one connection: a multi-master run needs one per database; a busy pool fails the kick, never hangs it', async () => {
    const dbs = await createDatabases(3);
    const [a, b, c] = dbs as [TestDb, TestDb, TestDb];
    await sqlAll(dbs, DDL);
    const rep = replicators.create({ connectionTimeoutMs: 2_000 });
    for (const [name, db] of [['a', a], ['b', b], ['c', c]] as const) await rep.addDatabase(name, { connectionString: db.url, max: 1 });
    await rep.addSync('s', { tables: ['t', 't_seq'], databases: { a: 'source', b: 'source', c: 'target' }, autokick: false });
    await sqlAll(dbs, `CREATE SEQUENCE t_seq`);
    await rep.install();
    await a.sql(`INSERT INTO t SELECT g, 'a' FROM generate_series(1, 20) g; SELECT nextval('t_seq')`);
    await b.sql(`INSERT INTO t SELECT g, 'b' FROM generate_series(21, 40) g`);
    const r = await rep.kick('s', { timeoutMs: 20_000 });
    expect(r.totals).toMatchObject({ upserted: 40 });
    for (const db of dbs) expect(await tableContents(db, 'public.t')).toHaveLength(40);

    // A pool the caller owns, its one connection held by the application: a clear error in time.
    const pool = new pg.Pool({ connectionString: a.url, max: 1 });
    const busy = await pool.connect();
    try {
      const rep2 = replicators.create({ connectionTimeoutMs: 500 });
      await rep2.addDatabase('a', { pool });
      await rep2.addDatabase('c', c.url);
      await rep2.addSync('s2', { tables: ['t'], databases: { a: 'source', c: 'target' }, autokick: false });
      const t0 = Date.now();
      const err = await rep2.kick('s2').catch((e: unknown) => e);
      expect(Date.now() - t0).toBeLessThan(5_000);
      expect(isPgferryError(err)).toBe(true);
      expect(err).toMatchObject({ code: 'CONNECTION_FAILED', database: 'a' });
      expect((err as Error).message).toMatch(/no connection of its pool \(max 1\) was free within 500 ms/);
    } finally {
      busy.release();
      await pool.end();
    }
  });

  it('an onException retry after a rolled-back savepoint writes the right origin: a ring of cascading syncs does not send the row back', async () => {
    const dbs = await createDatabases(3);
    const [a, b] = dbs as [TestDb, TestDb, TestDb];
    await sqlAll(dbs, `CREATE TABLE u (id int PRIMARY KEY, email text NOT NULL UNIQUE, v text)`);
    // b has another row with the email a is about to send: the first apply fails on it.
    await b.sql(`INSERT INTO u VALUES (99, 'x@example.com', 'only on b')`);
    const rep = replicators.create();
    for (const [name, db] of [['a', dbs[0]!], ['b', dbs[1]!], ['c', dbs[2]!]] as const) await rep.addDatabase(name, db.url);
    const hooked: string[] = [];
    await rep.addSync('ab', {
      tables: ['u'],
      databases: { a: 'source', b: 'target' },
      autokick: false,
      onException: async (ctx): Promise<'retry'> => {
        hooked.push(ctx.constraint ?? '?');
        await ctx.query('b', `UPDATE u SET email = 'moved-' || email WHERE id = 99`);
        return 'retry';
      },
    });
    await rep.addSync('bc', { tables: ['u'], databases: { b: 'source', c: 'target' }, autokick: false, cascade: true });
    await rep.addSync('ca', { tables: ['u'], databases: { c: 'source', a: 'target' }, autokick: false, cascade: true });
    await rep.install();
    const applied: RowsAppliedEvent[] = [];
    rep.on('rows:applied', (e) => applied.push(e));

    await a.sql(`INSERT INTO u VALUES (1, 'x@example.com', 'from a')`);
    await kick(rep, 'ab');
    expect(hooked).toEqual(['u_email_key']);
    await kick(rep, 'bc');
    await kick(rep, 'ca');
    // Row 1 was first written on a: the ring carried it to b and c, and never back to a.
    expect(applied.filter((e) => e.sync === 'ca').flatMap((e) => e.upserted)).toEqual([{ id: 99 }]);
    expect(await tableContents(dbs[2]!, 'u')).toEqual(['(1,x@example.com,"from a")', '(99,moved-x@example.com,"only on b")']);
    expect(await tableContents(a, 'u')).toEqual(['(1,x@example.com,"from a")', '(99,moved-x@example.com,"only on b")']);
  });
});
