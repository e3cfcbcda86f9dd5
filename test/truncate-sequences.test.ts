/**
 * TRUNCATE and sequences. A TRUNCATE on a source is replicated (alone, followed by inserts in
 * the same or a later transaction; in multi-master, only changes after the most recent
 * TRUNCATE on any source survive everywhere). Sequences listed in `tables` are replicated: the
 * value furthest along among the sources wins, increment and bounds follow, and the run result
 * names the value each sequence was set to.
 */
import { describe, expect, it } from 'vitest';
import { Replicator, type SyncConfig } from '../src/index.js';
import { createDatabases, sqlAll, tableContents, type TestDb } from './helpers/db.js';
import { declareSync, kick, type Roles } from './helpers/replicators.js';

interface Env {
  rep: Replicator;
  db: Record<string, TestDb>;
  names: string[];
}

/** One database per role, `ddl` in each, sync `s` declared (autokick off) and installed. */
async function withSync(roles: Roles, ddl: string, sync: Omit<SyncConfig, 'databases'>, body: (env: Env) => Promise<void>): Promise<void> {
  const names = Object.keys(roles);
  const list = await createDatabases(names.length);
  await sqlAll(list, ddl);
  const db = Object.fromEntries(names.map((n, i) => [n, list[i]!]));
  const rep = new Replicator();
  try {
    await declareSync(rep, list, { ...sync, databases: roles });
    await rep.install();
    await body({ rep, db, names });
  } finally {
    await rep.stop();
  }
}

async function ids(db: TestDb, table = 't'): Promise<number[]> {
  return (await db.sql<{ id: number }>(`SELECT id FROM ${table} ORDER BY id`)).map((r) => r.id);
}

/** Asserts every database holds the same rows in `table`; returns them. */
async function expectConverged(env: Env, table: string): Promise<string[]> {
  const first = await tableContents(env.db[env.names[0]!]!, table);
  for (const n of env.names.slice(1)) {
    expect(await tableContents(env.db[n]!, table), `${table} on "${n}" differs from "${env.names[0]}"`).toEqual(first);
  }
  return first;
}

const T = `CREATE TABLE public.t (id int PRIMARY KEY, v text)`;
const TU = `${T}; CREATE TABLE public.u (id int PRIMARY KEY, v text)`;

describe('TRUNCATE', () => {
  it('is replicated: alone, followed by inserts in the same transaction, and in a later one', async () => {
    await withSync({ a: 'source', b: 'target', c: 'target' }, TU, { tables: ['t', 'u'] }, async (env) => {
      const { a, b, c } = env.db as Record<string, TestDb>;
      await a!.sql(`INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 50) g`);
      await a!.sql(`INSERT INTO u SELECT g, 'u' || g FROM generate_series(1, 20) g`);
      await kick(env.rep);
      expect(await ids(b!)).toHaveLength(50);
      expect(await ids(c!, 'u')).toHaveLength(20);

      // TRUNCATE alone.
      await a!.sql(`TRUNCATE t`);
      const r1 = await kick(env.rep);
      expect(r1.status).toBe('ok');
      expect(await ids(b!)).toEqual([]);
      expect(await ids(c!)).toEqual([]);
      // The other table is untouched.
      expect(await ids(b!, 'u')).toHaveLength(20);
      expect((await kick(env.rep)).status).toBe('empty');

      // TRUNCATE then inserts, one transaction.
      await a!.sql(`INSERT INTO t SELECT g, 'again' FROM generate_series(1, 10) g`);
      await kick(env.rep);
      expect(await ids(b!)).toHaveLength(10);
      await a!.sql(`BEGIN; UPDATE t SET v = 'before truncate' WHERE id = 1; TRUNCATE t; INSERT INTO t VALUES (100, 'x'), (101, 'y'), (1, 'after'); COMMIT;`);
      await kick(env.rep);
      expect(await ids(b!)).toEqual([1, 100, 101]);
      await expectConverged(env, 'public.t');
      expect(await b!.sql(`SELECT v FROM t WHERE id = 1`)).toEqual([{ v: 'after' }]);

      // TRUNCATE, then inserts and updates in later transactions; two tables truncated at once.
      await a!.sql(`TRUNCATE t, u`);
      await a!.sql(`INSERT INTO t VALUES (200, 'a'), (201, 'b'), (202, 'c')`);
      await a!.sql(`UPDATE t SET v = 'B' WHERE id = 201`);
      await a!.sql(`DELETE FROM t WHERE id = 202`);
      await a!.sql(`INSERT INTO u VALUES (7, 'seven')`);
      await kick(env.rep);
      expect(await ids(b!)).toEqual([200, 201]);
      expect(await ids(c!, 'u')).toEqual([7]);
      await expectConverged(env, 'public.t');
      await expectConverged(env, 'public.u');

      // Rows a target holds that the source never had are gone after a TRUNCATE too.
      await b!.sql(`INSERT INTO t VALUES (-1, 'only on b')`);
      await a!.sql(`TRUNCATE t`);
      await a!.sql(`INSERT INTO t VALUES (300, 'z')`);
      await kick(env.rep);
      expect(await ids(b!)).toEqual([300]);
      await expectConverged(env, 'public.t');
      expect((await kick(env.rep)).status).toBe('empty');
    });
  });

  it("multi-master: sources truncating in turn: each TRUNCATE removes the rows before it; each source's changes after its own TRUNCATE survive everywhere", async () => {
    await withSync({ a: 'source', b: 'source', c: 'target' }, T, { tables: ['t'] }, async (env) => {
      const { a, b, c } = env.db as Record<string, TestDb>;
      await a!.sql(`INSERT INTO t SELECT g, 'a' || g FROM generate_series(1, 20) g`);
      await b!.sql(`INSERT INTO t SELECT g, 'b' || g FROM generate_series(21, 30) g`);
      await kick(env.rep);
      expect(await expectConverged(env, 'public.t')).toHaveLength(30);

      // In one run: a truncates and inserts, later b truncates and inserts.
      await a!.sql(`BEGIN; TRUNCATE t; INSERT INTO t VALUES (100, 'a after its truncate'), (101, 'a'); COMMIT;`);
      await a!.sql(`INSERT INTO t VALUES (102, 'a later')`);
      await b!.sql(`TRUNCATE t`);
      await b!.sql(`INSERT INTO t VALUES (200, 'b after its truncate'), (201, 'b')`);
      await kick(env.rep);
      // Both TRUNCATEs happened in one run's window: a's rows after its own TRUNCATE stay (how
      // they order against b's would be read off two servers' clocks).
      expect(await ids(c!)).toEqual([100, 101, 102, 200, 201]);
      expect(await ids(a!)).toEqual([100, 101, 102, 200, 201]);
      expect(await ids(b!)).toEqual([100, 101, 102, 200, 201]);
      await expectConverged(env, 'public.t');
      expect((await kick(env.rep)).status).toBe('empty');
      await expectConverged(env, 'public.t');

      // Across runs: a truncates and inserts (run), then b truncates and inserts (run).
      await a!.sql(`BEGIN; TRUNCATE t; INSERT INTO t VALUES (300, 'a'); COMMIT;`);
      await kick(env.rep);
      expect(await ids(b!)).toEqual([300]);
      expect(await ids(c!)).toEqual([300]);
      await b!.sql(`TRUNCATE t`);
      await b!.sql(`INSERT INTO t VALUES (400, 'b'), (401, 'b')`);
      await kick(env.rep);
      expect(await ids(a!)).toEqual([400, 401]);
      await expectConverged(env, 'public.t');
      expect((await kick(env.rep)).status).toBe('empty');
    });
  });

  it("multi-master: a TRUNCATE on a, and changes on b in the same run's window: b's changes survive", async () => {
    await withSync({ a: 'source', b: 'source', c: 'target' }, T, { tables: ['t'] }, async (env) => {
      const { a, b, c } = env.db as Record<string, TestDb>;
      await a!.sql(`INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 30) g`);
      await kick(env.rep);
      expect(await expectConverged(env, 'public.t')).toHaveLength(30);

      // b changes something before the TRUNCATE: it survives too (another server's change
      // is never dropped by comparing clocks).
      await b!.sql(`UPDATE t SET v = 'b before' WHERE id = 9`);
      await a!.sql(`TRUNCATE t`);
      await a!.sql(`INSERT INTO t VALUES (400, 'a after its truncate')`);
      await b!.sql(`UPDATE t SET v = 'b later' WHERE id IN (5, 6)`);
      await b!.sql(`INSERT INTO t VALUES (300, 'b new')`);
      await b!.sql(`DELETE FROM t WHERE id = 7`);
      const r = await kick(env.rep);
      expect(r.status).toBe('ok');
      expect(await c!.sql(`SELECT id, v FROM t ORDER BY id`)).toEqual([
        { id: 5, v: 'b later' },
        { id: 6, v: 'b later' },
        { id: 9, v: 'b before' },
        { id: 300, v: 'b new' },
        { id: 400, v: 'a after its truncate' },
      ]);
      expect(await ids(b!)).toEqual([5, 6, 9, 300, 400]);
      await expectConverged(env, 'public.t');
      expect((await kick(env.rep)).status).toBe('empty');

      // Later changes on either side flow as usual.
      await a!.sql(`UPDATE t SET v = 'a again' WHERE id = 5`);
      await b!.sql(`INSERT INTO t VALUES (500, 'b')`);
      await kick(env.rep);
      expect(await c!.sql(`SELECT id, v FROM t ORDER BY id`)).toEqual([
        { id: 5, v: 'a again' },
        { id: 6, v: 'b later' },
        { id: 9, v: 'b before' },
        { id: 300, v: 'b new' },
        { id: 400, v: 'a after its truncate' },
        { id: 500, v: 'b' },
      ]);
      await expectConverged(env, 'public.t');
    });
  });

  it("multi-master: a source whose clock runs an hour ahead truncates; the other's later writes are not lost", async () => {
    await withSync({ a: 'source', b: 'source', c: 'target' }, T, { tables: ['t'] }, async (env) => {
      const { a, b, c } = env.db as Record<string, TestDb>;
      await a!.sql(`INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 10) g`);
      await kick(env.rep);
      await a!.sql(`TRUNCATE t`);
      // As if a's clock were an hour ahead when it recorded the TRUNCATE.
      await a!.sql(`UPDATE pgferry.truncates SET changed_at = changed_at + interval '1 hour'`);
      await b!.sql(`INSERT INTO t VALUES (50, 'b after the truncate')`);
      await b!.sql(`UPDATE t SET v = 'b after too' WHERE id = 3`);
      await kick(env.rep);
      expect(await c!.sql(`SELECT id, v FROM t ORDER BY id`)).toEqual([
        { id: 3, v: 'b after too' },
        { id: 50, v: 'b after the truncate' },
      ]);
      await expectConverged(env, 'public.t');
    });
  });
});

interface SeqState {
  last_value: string | null;
  increment_by: string;
  min_value: string;
  max_value: string;
}

async function seq(db: TestDb, name: string): Promise<SeqState> {
  const r = await db.sql<SeqState>(
    `SELECT last_value::text, increment_by::text, min_value::text, max_value::text FROM pg_sequences WHERE schemaname = 'public' AND sequencename = $1`,
    [name],
  );
  return r[0]!;
}

async function nextval(db: TestDb, name: string): Promise<string> {
  return (await db.sql<{ v: string }>(`SELECT nextval($1)::text AS v`, [`public.${name}`]))[0]!.v;
}

describe('sequences', () => {
  it('one source: values, increment and bounds reach the target; the run result names the value', async () => {
    const ddl = `CREATE TABLE public.t (id serial PRIMARY KEY, v text)`;
    await withSync({ a: 'source', b: 'target' }, ddl, { tables: ['t', 'public.t_id_seq'] }, async (env) => {
      const { a, b } = env.db as Record<string, TestDb>;
      await a!.sql(`INSERT INTO t (v) SELECT 'v' || g FROM generate_series(1, 10) g`);
      const r1 = await kick(env.rep);
      expect(r1.sequences).toEqual({ 'public.t_id_seq': '10' });
      expect(await seq(b!, 't_id_seq')).toEqual(await seq(a!, 't_id_seq'));
      expect((await seq(b!, 't_id_seq')).last_value).toBe('10');
      expect(await tableContents(b!, 'public.t')).toEqual(await tableContents(a!, 'public.t'));
      // The next value is the same on both.
      expect(await nextval(a!, 't_id_seq')).toBe('11');
      expect(await nextval(b!, 't_id_seq')).toBe('11');

      await a!.sql(`INSERT INTO t (v) SELECT 'w' || g FROM generate_series(1, 5) g`);
      const r2 = await kick(env.rep);
      expect(r2.sequences).toEqual({ 'public.t_id_seq': '16' });
      expect((await seq(b!, 't_id_seq')).last_value).toBe('16');

      // Increment and bounds follow the source.
      await a!.sql(`ALTER SEQUENCE t_id_seq INCREMENT BY 5 MAXVALUE 1000000`);
      await a!.sql(`INSERT INTO t (v) VALUES ('by five')`);
      const r3 = await kick(env.rep);
      expect(r3.sequences).toEqual({ 'public.t_id_seq': '21' });
      const sa = await seq(a!, 't_id_seq');
      expect(sa).toEqual({ last_value: '21', increment_by: '5', min_value: '1', max_value: '1000000' });
      expect(await seq(b!, 't_id_seq')).toEqual(sa);
      expect(await nextval(a!, 't_id_seq')).toBe('26');
      expect(await nextval(b!, 't_id_seq')).toBe('26');
      expect(await tableContents(b!, 'public.t')).toEqual(await tableContents(a!, 'public.t'));

      // A run with no row changes still carries the sequence (a moved by nextval above).
      await a!.sql(`SELECT nextval('t_id_seq')`);
      const r4 = await kick(env.rep);
      expect(r4.sequences).toEqual({ 'public.t_id_seq': '31' });
      expect((await seq(b!, 't_id_seq')).last_value).toBe('31');
    });
  });

  it('several sources: the highest value among them reaches the targets; each source keeps its own', async () => {
    const ddl = `CREATE TABLE public.t (id int PRIMARY KEY, v text); CREATE SEQUENCE public.counter`;
    await withSync({ a: 'source', b: 'source', c: 'target' }, ddl, { tables: ['t', 'counter'] }, async (env) => {
      const { a, b, c } = env.db as Record<string, TestDb>;
      await a!.sql(`SELECT nextval('counter') FROM generate_series(1, 10)`);
      await b!.sql(`SELECT nextval('counter') FROM generate_series(1, 25)`);
      const r1 = await kick(env.rep);
      expect(r1.sequences).toEqual({ 'public.counter': '25' });
      expect((await seq(c!, 'counter')).last_value).toBe('25');
      expect((await seq(a!, 'counter')).last_value).toBe('10');
      expect(await nextval(c!, 'counter')).toBe('26');

      // Now a is ahead.
      await a!.sql(`SELECT nextval('counter') FROM generate_series(1, 30)`); // 40
      await b!.sql(`SELECT nextval('counter') FROM generate_series(1, 3)`); // 28
      const r2 = await kick(env.rep);
      expect(r2.sequences).toEqual({ 'public.counter': '40' });
      expect((await seq(c!, 'counter')).last_value).toBe('40');
      expect((await seq(b!, 'counter')).last_value).toBe('28');
    });
  });

  it('several sources handing out odd and even ids never collide because of pgferry', async () => {
    const ddl = `CREATE SEQUENCE t_id_seq; CREATE TABLE public.t (id bigint PRIMARY KEY DEFAULT nextval('t_id_seq'), v text)`;
    await withSync({ a: 'source', b: 'source', c: 'target' }, ddl, { tables: ['t', 't_id_seq'] }, async (env) => {
      const { a, b, c } = env.db as Record<string, TestDb>;
      // The recommended scheme: each source its own residue.
      await a!.sql(`ALTER SEQUENCE t_id_seq INCREMENT 2 START 1 RESTART 1`);
      await b!.sql(`ALTER SEQUENCE t_id_seq INCREMENT 2 START 2 MINVALUE 2 RESTART 2`);
      for (let round = 0; round < 3; round++) {
        await a!.sql(`INSERT INTO t (v) SELECT 'a' FROM generate_series(1, 5)`);
        await b!.sql(`INSERT INTO t (v) SELECT 'b' FROM generate_series(1, 7)`);
        await kick(env.rep);
      }
      const rows = await expectConverged(env, 'public.t');
      expect(rows).toHaveLength(36);
      expect((await a!.sql<{ n: number }>(`SELECT count(*)::int AS n FROM t WHERE v = 'a' AND id % 2 = 1`))[0]!.n).toBe(15);
      expect((await a!.sql<{ n: number }>(`SELECT count(*)::int AS n FROM t WHERE v = 'b' AND id % 2 = 0`))[0]!.n).toBe(21);
      expect((await seq(c!, 't_id_seq'))).toMatchObject({ last_value: '42', increment_by: '2' });
    });
  });
});
