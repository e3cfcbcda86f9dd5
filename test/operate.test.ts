/**
 * Operating pgferry: metrics (run counters, backlog and lag read from the sources, the same for
 * an instance that never ran the sync), the kept history of settled conflicts on both stores,
 * and waitForApplied (read-your-writes), which waits for the target and times out when runs
 * cannot apply.
 */
import { describe, expect, it } from 'vitest';
import { MemoryControlStore, PostgresControlStore, Replicator, type ControlStore, type MeterLike, type MetricAttributes } from '../src/index.js';
import { connect, createDatabases, sqlAll, type TestDb } from './helpers/db.js';
import { caught, expectConfigInvalid } from './helpers/errors.js';
import { declareSync, kick, stopReplicatorsAfterEach } from './helpers/replicators.js';
import { waitFor, within } from './helpers/wait.js';

const replicators = stopReplicatorsAfterEach();

const DDL = 'CREATE TABLE t (id int PRIMARY KEY, v text)';

describe('metrics()', () => {
  it('backlog and lag with changes pending and nothing running, the same on an instance that never ran; zero after a run', async () => {
    const dbs = await createDatabases(2);
    await sqlAll(dbs, DDL);
    const [a, b] = dbs;
    const rep = await replicators.installed(dbs, { tables: ['t'] });
    const other = await declareSync(replicators.create(), dbs, { tables: ['t'] });

    // Never ran: no watermark, every change counts; key 1 changed twice is one key.
    await a!.sql(`INSERT INTO t VALUES (1, 'x'), (2, 'y'), (3, 'z')`);
    await a!.sql(`UPDATE t SET v = 'x2' WHERE id = 1`);
    let m = (await rep.metrics()).syncs['s']!;
    expect(m).toMatchObject({ runs: 0, failedRuns: 0, rowsApplied: 0, conflicts: 0, lastRunAt: null, backlog: { a: 3 } });
    expect((await other.metrics()).syncs['s']!.backlog).toEqual({ a: 3 });

    // Lag is the age of the oldest pending change (by the source's clock).
    await waitFor('lag of 300 ms', async () => (await other.metrics()).syncs['s']!.lagMs >= 300);

    await kick(rep);
    m = (await rep.metrics()).syncs['s']!;
    expect(m).toMatchObject({ runs: 1, failedRuns: 0, rowsApplied: 3, backlog: { a: 0 }, lagMs: 0 });
    expect(m.lastRunAt).toBeInstanceOf(Date);
    expect((await other.metrics()).syncs['s']).toMatchObject({ runs: 0, lastRunAt: null, backlog: { a: 0 }, lagMs: 0 });

    // Pending again after the watermark: only the new change, with a fresh lag.
    await a!.sql(`UPDATE t SET v = 'y2' WHERE id = 2`);
    m = (await other.metrics()).syncs['s']!;
    expect(m.backlog).toEqual({ a: 1 });
    expect(m.lagMs).toBeLessThan(300);

    // A failed run counts, and the backlog stays.
    await b!.sql('ALTER TABLE t RENAME TO t_gone');
    await expect(rep.kick('s')).rejects.toMatchObject({ code: 'TABLE_NOT_FOUND' });
    expect((await rep.metrics()).syncs['s']).toMatchObject({ runs: 2, failedRuns: 1, rowsApplied: 3, backlog: { a: 1 } });
  });

  it('counts every source of a multi-master sync, and changes applied by the sync are not backlog', async () => {
    const [a, b] = await createDatabases(2);
    await sqlAll([a!, b!], DDL);
    const rep = await replicators.installed([a!, b!], { tables: ['t'], databases: { a: 'source', b: 'source' } });
    await a!.sql(`INSERT INTO t VALUES (1, 'a')`);
    await b!.sql(`INSERT INTO t VALUES (2, 'b'), (3, 'b')`);
    expect((await rep.metrics()).syncs['s']!.backlog).toEqual({ a: 1, b: 2 });
    await kick(rep);
    expect((await rep.metrics()).syncs['s']).toMatchObject({ backlog: { a: 0, b: 0 }, lagMs: 0, rowsApplied: 3 });
  });
});

describe('conflicts()', () => {
  const stores: [string, (control: TestDb) => ControlStore][] = [
    ['MemoryControlStore', () => new MemoryControlStore({ keepConflicts: 2 })],
    ['PostgresControlStore', (control) => new PostgresControlStore({ connection: control.url, keepConflicts: 2 })],
  ];

  for (const [name, makeStore] of stores) {
    it(`${name} keeps settled 'latest' conflicts with both sources' rows, latest first, the last N only`, async () => {
      const [a, b, control] = await createDatabases(3);
      await sqlAll([a!, b!], `${DDL}; INSERT INTO t VALUES (1, 'seed'), (2, 'seed'), (3, 'seed')`);
      const rep = await replicators.installed([a!, b!], { tables: ['t'], databases: { a: 'source', b: 'source' }, conflictStrategy: 'latest' }, { store: makeStore(control!) });
      await kick(rep);
      for (const id of [1, 2, 3]) {
        await a!.sql(`UPDATE t SET v = 'a${id}' WHERE id = $1`, [id]);
        // b writes last and wins; on key 3 it deletes.
        await b!.sql(id === 3 ? `DELETE FROM t WHERE id = $1` : `UPDATE t SET v = 'b${id}' WHERE id = $1`, [id]);
        const r = await kick(rep);
        expect(r.totals.conflicts).toBe(1);
        // Recorded in the background: wait for it, so the order of records is the order of runs.
        await waitFor(`conflict on key ${id} recorded`, async () => (await rep.conflicts('s'))[0]?.key['id'] === id);
      }
      const kept = await rep.conflicts('s');
      expect(kept).toHaveLength(2);
      expect(kept[0]).toMatchObject({ sync: 's', table: 'public.t', key: { id: 3 }, resolution: 'winner', winner: 'b', rows: { a: { id: 3, v: 'a3' }, b: null } });
      expect(kept[1]).toMatchObject({ key: { id: 2 }, resolution: 'winner', winner: 'b', rows: { a: { id: 2, v: 'a2' }, b: { id: 2, v: 'b2' } } });
      expect(kept[0]!.at).toBeInstanceOf(Date);
      expect(kept[0]!.at.getTime()).toBeGreaterThanOrEqual(kept[1]!.at.getTime());
      expect((await rep.conflicts('s', { limit: 1 })).map((c) => c.key)).toEqual([{ id: 3 }]);
      expect((await rep.metrics()).syncs['s']!.conflicts).toBe(3);
    });
  }

  it('a run that rolls back keeps none of its conflicts; the run that settles them again does', async () => {
    const [a, b] = await createDatabases(2);
    await sqlAll([a!, b!], `CREATE TABLE t (id int PRIMARY KEY, v text UNIQUE); INSERT INTO t VALUES (1, 'seed')`);
    const rep = await replicators.installed([a!, b!], { tables: ['t'], databases: { a: 'source', b: 'source' } });
    await kick(rep);
    await a!.sql(`UPDATE t SET v = 'a1' WHERE id = 1`);
    await b!.sql(`UPDATE t SET v = 'b1' WHERE id = 1`);
    // Keys 3 and 4 carry the same unique value: applying either breaks the constraint.
    await a!.sql(`INSERT INTO t VALUES (3, 'dup')`);
    await b!.sql(`INSERT INTO t VALUES (4, 'dup')`);
    await expect(rep.kick('s')).rejects.toMatchObject({ code: 'CONSTRAINT_VIOLATION' });
    await b!.sql(`DELETE FROM t WHERE id = 4`);
    expect((await kick(rep)).totals.conflicts).toBe(1);
    await waitFor('the conflict recorded', async () => (await rep.conflicts('s')).length > 0);
    await rep.stop(); // every record written
    expect((await rep.conflicts('s')).map((c) => [c.key, c.winner])).toEqual([[{ id: 1 }, 'b']]);
  });

  it('an unknown sync is UNKNOWN_SYNC, bad options are CONFIG_INVALID, a store without history gives none', async () => {
    const [a, b] = await createDatabases(2);
    await sqlAll([a!, b!], DDL);
    const runsOnly = new MemoryControlStore();
    const store: ControlStore = { recordRun: (r) => runsOnly.recordRun(r), runs: (s, l) => runsOnly.runs(s, l) };
    const rep = await replicators.installed([a!, b!], { tables: ['t'] }, { store });
    expect((await caught(rep.conflicts('nope'))).code).toBe('UNKNOWN_SYNC');
    expectConfigInvalid(await caught(rep.conflicts('s', { limit: 0 })), 'limit');
    expect(await rep.conflicts('s')).toEqual([]);
  });
});

describe('waitForApplied()', () => {
  async function oneWay(): Promise<{ a: TestDb; b: TestDb; rep: Replicator }> {
    const [a, b] = await createDatabases(2);
    await sqlAll([a!, b!], DDL);
    const rep = await replicators.installed([a!, b!], { tables: ['t'], autokick: true });
    return { a: a!, b: b!, rep };
  }

  it('with start() running: resolves only once the row is on the target', async () => {
    const { a, b, rep } = await oneWay();
    await rep.start();
    for (const id of [1, 2, 3]) {
      await a.sql(`INSERT INTO t VALUES ($1, 'v')`, [id]);
      await rep.waitForApplied('a', { timeoutMs: 10_000 });
      expect(await b.sql(`SELECT v FROM t WHERE id = $1`, [id])).toEqual([{ v: 'v' }]);
    }
    // b is a source of no sync; unknown names and bad options are refused.
    await rep.waitForApplied('b', { timeoutMs: 1 });
    expect((await caught(rep.waitForApplied('nope'))).code).toBe('UNKNOWN_DATABASE');
    expectConfigInvalid(await caught(rep.waitForApplied('a', { timeoutMs: -1 })), 'timeoutMs');
  });

  it('on an instance that does not run the sync: resolves once another instance applied it', async () => {
    const [a, b] = await createDatabases(2);
    await sqlAll([a!, b!], DDL);
    const runner = await replicators.installed([a!, b!], { tables: ['t'] });
    const waiter = await declareSync(replicators.create(), [a!, b!], { tables: ['t'] });
    await kick(runner);
    await a!.sql(`INSERT INTO t VALUES (1, 'v')`);
    const waiting = waiter.waitForApplied('a', { timeoutMs: 10_000 });
    expect(await within(waiting, 150)).toBeNull(); // nobody ran the sync yet
    await kick(runner);
    await waiting;
    expect(await b!.sql(`SELECT v FROM t`)).toEqual([{ v: 'v' }]);
  });

  it('rejects WAIT_TIMEOUT naming the database and sync while runs cannot apply, and resolves once they can', async () => {
    const [a, b] = await createDatabases(2);
    await sqlAll([a!, b!], DDL);
    const rep = await replicators.installed([a!, b!], { tables: ['t'] });
    await kick(rep);
    const lock = await connect(b!);
    await lock.query('BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE');
    await a!.sql(`INSERT INTO t VALUES (1, 'v')`);
    const run = rep.kick('s').catch((err: unknown) => err);
    const err = await caught(rep.waitForApplied('a', { timeoutMs: 300 }));
    expect(err.code).toBe('WAIT_TIMEOUT');
    expect(err.database).toBe('a');
    expect(err.message).toContain('"s"');
    await lock.query('ROLLBACK');
    const ran = await run;
    if (ran instanceof Error) await kick(rep); // a run that gave up on the lock: run again
    await rep.waitForApplied('a', { timeoutMs: 10_000 });
    expect(await b!.sql(`SELECT v FROM t`)).toEqual([{ v: 'v' }]);
  });
});

/** A Meter that keeps what it is given, and collects its gauges on demand. */
function fakeMeter() {
  const adds: { name: string; value: number; attributes?: MetricAttributes }[] = [];
  const gauges = new Map<object, string>();
  let batch: Parameters<MeterLike['addBatchObservableCallback']>[0] | null = null;
  const meter: MeterLike = {
    createCounter: (name) => ({ add: (value, attributes) => void adds.push({ name, value, ...(attributes && { attributes }) }) }),
    createHistogram: (name) => ({ record: (value, attributes) => void adds.push({ name, value, ...(attributes && { attributes }) }) }),
    createObservableGauge: (name) => {
      const g = {};
      gauges.set(g, name);
      return g;
    },
    addBatchObservableCallback: (cb) => void (batch = cb),
  };
  async function collect() {
    const seen: { name: string; value: number; attributes?: MetricAttributes }[] = [];
    await batch!({ observe: (g, value, attributes) => void seen.push({ name: gauges.get(g)!, value, ...(attributes && { attributes }) }) });
    return seen;
  }
  return { meter, adds, collect };
}

describe('meter', () => {
  it('reports runs, durations, rows and conflicts as they happen, and backlog and lag when collected', async () => {
    const [a, b] = await createDatabases(2);
    await sqlAll([a!, b!], `${DDL}; INSERT INTO t VALUES (1, 'seed')`);
    const m = fakeMeter();
    const rep = await replicators.installed([a!, b!], { tables: ['t'], databases: { a: 'source', b: 'source' } }, { meter: m.meter });
    await kick(rep);
    await a!.sql(`UPDATE t SET v = 'a' WHERE id = 1`);
    await b!.sql(`UPDATE t SET v = 'b' WHERE id = 1`);
    await a!.sql(`INSERT INTO t VALUES (2, 'a')`);
    expect(await m.collect()).toEqual([
      { name: 'pgferry.backlog', value: 2, attributes: { sync: 's', database: 'a' } },
      { name: 'pgferry.backlog', value: 1, attributes: { sync: 's', database: 'b' } },
      { name: 'pgferry.lag', value: expect.any(Number), attributes: { sync: 's' } },
    ]);
    m.adds.length = 0;
    await kick(rep);
    expect(m.adds).toEqual([
      { name: 'pgferry.runs', value: 1, attributes: { sync: 's', status: 'ok' } },
      { name: 'pgferry.run.duration', value: expect.any(Number), attributes: { sync: 's', status: 'ok' } },
      { name: 'pgferry.rows.applied', value: 2, attributes: { sync: 's', table: 'public.t' } },
      { name: 'pgferry.conflicts', value: 1, attributes: { sync: 's', table: 'public.t' } },
    ]);
    expect((await m.collect()).map((o) => o.value)).toEqual([0, 0, 0]);
    expectConfigInvalid(await caught(async () => new Replicator({ meter: {} as MeterLike })), 'meter');
  });
});
