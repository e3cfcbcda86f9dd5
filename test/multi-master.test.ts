/**
 * Multi-master: syncs with two or more `source` databases. Changes on any source reach every
 * other database, nothing echoes back, conflicts are settled by every strategy of the API,
 * foreign keys hold after every run, user triggers fire for replicated rows, and a unique
 * violation on a non-key column fails cleanly or is settled by an onException hook.
 */
import { describe, expect, it } from 'vitest';
import type pg from 'pg';
import { Replicator, isPgferryError, type Conflict } from '../src/index.js';
import type { ConflictEvent, ConflictStrategy, ExceptionContext, RowsAppliedEvent, SyncConfig } from '../src/index.js';
import { connect, createDatabases, sqlAll, tableContents, type TestDb } from './helpers/db.js';
import { caught, describeError } from './helpers/errors.js';
import { record } from './helpers/events.js';
import { declareSync, kick, type Roles } from './helpers/replicators.js';
import { sleep } from './helpers/wait.js';

interface Env {
  rep: Replicator;
  /** Test databases by their name in the sync. */
  db: Record<string, TestDb>;
  /** One open connection per database, for the application's writes. */
  client: Record<string, pg.Client>;
  names: string[];
  conflicts: ConflictEvent[];
  applied: RowsAppliedEvent[];
}

/**
 * Makes one database per entry of `roles`, runs `ddl` in each (seed rows written here are
 * not captured: install comes after), declares sync `s` and installs it, then runs `body`.
 */
async function withSync(
  roles: Roles,
  ddl: string,
  sync: Omit<SyncConfig, 'databases'>,
  body: (env: Env) => Promise<void>,
): Promise<void> {
  const names = Object.keys(roles);
  const list = await createDatabases(names.length);
  await sqlAll(list, ddl);
  const db = Object.fromEntries(names.map((n, i) => [n, list[i]!]));
  const client: Record<string, pg.Client> = {};
  const rep = new Replicator();
  const ev = record(rep, ['conflict', 'rows:applied']);
  try {
    for (const n of names) client[n] = await connect(db[n]!);
    await declareSync(rep, list, { ...sync, databases: roles });
    await rep.install();
    await body({ rep, db, client, names, conflicts: ev.conflicts, applied: ev.applied });
  } finally {
    await rep.stop();
  }
}

async function contentsOf(env: Env, table: string): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const n of env.names) out[n] = await tableContents(env.db[n]!, table);
  return out;
}

/** Asserts that every database holds the same rows in `table`; returns them. */
async function expectConverged(env: Env, table: string, dbs: string[] = env.names): Promise<string[]> {
  const first = await tableContents(env.db[dbs[0]!]!, table);
  for (const n of dbs.slice(1)) {
    expect(await tableContents(env.db[n]!, table), `${table} on "${n}" differs from "${dbs[0]}"`).toEqual(first);
  }
  return first;
}

function pickConflict(e: ConflictEvent) {
  return { sync: e.sync, table: e.table, key: e.key, resolution: e.resolution, winner: e.winner };
}

function byKey(a: { table: string; key: Record<string, unknown> }, b: { table: string; key: Record<string, unknown> }): number {
  return a.table.localeCompare(b.table) || JSON.stringify(a.key).localeCompare(JSON.stringify(b.key), 'en', { numeric: true });
}

// ---------------------------------------------------------------------------------------------
// The case table: three sources and a target. For each key, which sources change it and in
// which order (each step is ~25 ms after the previous one, so the servers' clocks order them).

type Op = 'ins' | 'upd' | 'del';
interface Case {
  id: number;
  what: string;
  writes: [db: string, op: Op][];
}
type SimRow = { id: number; v: string; n: number } | null;

const ROLES3: Roles = { a: 'source', b: 'source', c: 'source', d: 'target' };
const SOURCES3 = ['a', 'b', 'c'];
/** Keys below 100 exist everywhere before install; keys from 100 on are inserted by the cases. */
const SEEDED = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 90, 91];
const CASE_DDL = `CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL, n int NOT NULL);
                  INSERT INTO t SELECT g, 'seed', 0 FROM unnest(ARRAY[${SEEDED.join(',')}]) g;`;

const CASES: Case[] = [
  { id: 1, what: 'update on a only', writes: [['a', 'upd']] },
  { id: 2, what: 'delete on b only', writes: [['b', 'del']] },
  { id: 3, what: 'update vs update, a then b', writes: [['a', 'upd'], ['b', 'upd']] },
  { id: 4, what: 'update vs update, b then a', writes: [['b', 'upd'], ['a', 'upd']] },
  { id: 5, what: 'update on all three, c a b', writes: [['c', 'upd'], ['a', 'upd'], ['b', 'upd']] },
  { id: 6, what: 'update on all three, a b c', writes: [['a', 'upd'], ['b', 'upd'], ['c', 'upd']] },
  { id: 7, what: 'update on a, then delete on b', writes: [['a', 'upd'], ['b', 'del']] },
  { id: 8, what: 'update on a, then delete on b (2)', writes: [['a', 'upd'], ['b', 'del']] },
  { id: 9, what: 'delete on b, then update on a', writes: [['b', 'del'], ['a', 'upd']] },
  { id: 10, what: 'delete on b, then update on a (2)', writes: [['b', 'del'], ['a', 'upd']] },
  { id: 11, what: 'delete vs delete', writes: [['a', 'del'], ['b', 'del']] },
  { id: 12, what: 'delete on a and c, then update on b', writes: [['a', 'del'], ['c', 'del'], ['b', 'upd']] },
  { id: 13, what: 'update on c, delete on b, delete on a', writes: [['c', 'upd'], ['b', 'del'], ['a', 'del']] },
  { id: 14, what: 'a, b, then a again', writes: [['a', 'upd'], ['b', 'upd'], ['a', 'upd']] },
  { id: 15, what: 'update on c, then update on b', writes: [['c', 'upd'], ['b', 'upd']] },
  { id: 101, what: 'insert vs insert, a then b', writes: [['a', 'ins'], ['b', 'ins']] },
  { id: 102, what: 'insert vs insert, b then a', writes: [['b', 'ins'], ['a', 'ins']] },
  { id: 103, what: 'insert on all three, c a b', writes: [['c', 'ins'], ['a', 'ins'], ['b', 'ins']] },
  { id: 104, what: 'insert on c only', writes: [['c', 'ins']] },
  { id: 105, what: 'insert on a, then c', writes: [['a', 'ins'], ['c', 'ins']] },
];

const writersOf = (c: Case): string[] => [...new Set(c.writes.map(([db]) => db))];
const lastWriter = (c: Case): string => c.writes[c.writes.length - 1]![0];

/** Plays the cases' writes step by step; returns what each database holds afterwards. */
async function playCases(env: Env, cases: Case[]): Promise<Record<string, Map<number, SimRow>>> {
  const state: Record<string, Map<number, SimRow>> = {};
  for (const n of env.names) state[n] = new Map(SEEDED.map((id) => [id, { id, v: 'seed', n: 0 }]));
  const steps = Math.max(...cases.map((c) => c.writes.length));
  let seq = 0;
  for (let s = 0; s < steps; s++) {
    for (const c of cases) {
      const w = c.writes[s];
      if (!w) continue;
      const [dbName, op] = w;
      const cl = env.client[dbName]!;
      const cur = state[dbName]!.get(c.id) ?? null;
      seq++;
      const row = { id: c.id, v: `${dbName}${seq}`, n: seq };
      if (op === 'ins') {
        expect(cur, `case ${c.id}: insert of an existing row on ${dbName}`).toBeNull();
        await cl.query('INSERT INTO t (id, v, n) VALUES ($1, $2, $3)', [row.id, row.v, row.n]);
        state[dbName]!.set(c.id, row);
      } else if (op === 'upd') {
        expect(cur, `case ${c.id}: update of a missing row on ${dbName}`).not.toBeNull();
        await cl.query('UPDATE t SET v = $2, n = $3 WHERE id = $1', [row.id, row.v, row.n]);
        state[dbName]!.set(c.id, row);
      } else {
        expect(cur, `case ${c.id}: delete of a missing row on ${dbName}`).not.toBeNull();
        await cl.query('DELETE FROM t WHERE id = $1', [c.id]);
        state[dbName]!.set(c.id, null);
      }
    }
    await sleep(25);
  }
  return state;
}

const line = (r: SimRow): string | null => (r ? `(${r.id},${r.v},${r.n})` : null);

/**
 * The rows every database must hold after the run, given who wins each conflicting key
 * (`'skip'`: every database keeps its own version).
 */
function expectedContents(
  env: Env,
  cases: Case[],
  state: Record<string, Map<number, SimRow>>,
  outcome: (c: Case) => string | 'skip',
): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  const ids = new Set<number>([...SEEDED, ...cases.map((c) => c.id)]);
  for (const n of env.names) {
    const lines: string[] = [];
    for (const id of ids) {
      const c = cases.find((x) => x.id === id);
      let from = n;
      if (c) {
        const writers = writersOf(c);
        if (writers.length === 1) from = writers[0]!;
        else {
          const o = outcome(c);
          from = o === 'skip' ? n : o;
        }
      }
      const l = line(state[from]!.get(id) ?? null);
      if (l) lines.push(l);
    }
    out[n] = lines.sort();
  }
  return out;
}

function expectedConflicts(cases: Case[], outcome: (c: Case) => string | 'skip') {
  return cases
    .filter((c) => writersOf(c).length > 1)
    .map((c) => {
      const o = outcome(c);
      return {
        sync: 's',
        table: 'public.t',
        key: { id: c.id },
        resolution: o === 'skip' ? 'skip' : 'winner',
        winner: o === 'skip' ? null : o,
      };
    })
    .sort(byKey);
}

const conflictCount = CASES.filter((c) => writersOf(c).length > 1).length;

/** Plays the case table under `strategy` and checks rows, events and the run result. */
async function checkStrategy(strategy: ConflictStrategy, outcome: (c: Case) => string | 'skip', after?: (env: Env, state: Record<string, Map<number, SimRow>>) => Promise<void>) {
  await withSync(ROLES3, CASE_DDL, { tables: ['t'], conflictStrategy: strategy }, async (env) => {
    const state = await playCases(env, CASES);
    const r = await kick(env.rep);
    expect(r.status).toBe('ok');
    expect(r.tables['public.t']!.conflicts).toBe(conflictCount);
    expect(await contentsOf(env, 't')).toEqual(expectedContents(env, CASES, state, outcome));
    expect(env.conflicts.map(pickConflict).sort(byKey)).toEqual(expectedConflicts(CASES, outcome));
    // Nothing ping-pongs: the applier's writes are not read back as changes.
    expect((await kick(env.rep)).status).toBe('empty');
    expect((await kick(env.rep)).status).toBe('empty');
    if (after) await after(env, state);
  });
}

describe('multi-master: changes flow between sources', () => {
  it('disjoint writes on three sources reach every database, and a second and third kick are empty', async () => {
    await withSync(ROLES3, 'CREATE TABLE t (id int PRIMARY KEY, v text)', { tables: ['t'] }, async (env) => {
      const { a, b, c } = env.client;
      await a!.query(`INSERT INTO t SELECT g, 'a' || g FROM generate_series(1, 3) g`);
      await b!.query(`INSERT INTO t SELECT g, 'b' || g FROM generate_series(11, 13) g`);
      await c!.query(`INSERT INTO t SELECT g, 'c' || g FROM generate_series(21, 23) g`);
      const r1 = await kick(env.rep);
      expect(r1.status).toBe('ok');
      expect(r1.tables['public.t']!.conflicts).toBe(0);
      const rows = await expectConverged(env, 't');
      expect(rows).toHaveLength(9);
      expect(rows).toEqual(
        ['(1,a1)', '(2,a2)', '(3,a3)', '(11,b11)', '(12,b12)', '(13,b13)', '(21,c21)', '(22,c22)', '(23,c23)'].sort(),
      );

      // No echo: the rows the applier wrote on a, b and c are not changes for this sync.
      const appliedBefore = env.applied.length;
      expect((await kick(env.rep)).status).toBe('empty');
      expect((await kick(env.rep)).status).toBe('empty');
      expect(env.applied.length).toBe(appliedBefore);

      // Both ways again: each source changes rows that another source wrote.
      await a!.query(`DELETE FROM t WHERE id = 11`);
      await a!.query(`UPDATE t SET v = 'a-on-c' WHERE id = 21`);
      await b!.query(`UPDATE t SET v = 'b-on-a' WHERE id = 1`);
      await c!.query(`DELETE FROM t WHERE id = 2`);
      await c!.query(`INSERT INTO t VALUES (30, 'c30')`);
      const r2 = await kick(env.rep);
      expect(r2.status).toBe('ok');
      expect(r2.tables['public.t']!.conflicts).toBe(0);
      expect(await expectConverged(env, 't')).toEqual(
        ['(1,b-on-a)', '(3,a3)', '(12,b12)', '(13,b13)', '(21,a-on-c)', '(22,c22)', '(23,c23)', '(30,c30)'].sort(),
      );
      expect((await kick(env.rep)).status).toBe('empty');
      expect((await kick(env.rep)).status).toBe('empty');
    });
  });

  it('the same key inserted on two sources converges (the later insert wins)', async () => {
    await withSync({ a: 'source', b: 'source', c: 'target' }, 'CREATE TABLE t (id int PRIMARY KEY, v text)', { tables: ['t'] }, async (env) => {
      await env.client.a!.query(`INSERT INTO t VALUES (1, 'from-a'), (2, 'only-a')`);
      await sleep(25);
      await env.client.b!.query(`INSERT INTO t VALUES (1, 'from-b'), (3, 'only-b')`);
      const r = await kick(env.rep);
      expect(r.tables['public.t']!.conflicts).toBe(1);
      expect(await expectConverged(env, 't')).toEqual(['(1,from-b)', '(2,only-a)', '(3,only-b)']);
      expect(env.conflicts.map(pickConflict)).toEqual([
        { sync: 's', table: 'public.t', key: { id: 1 }, resolution: 'winner', winner: 'b' },
      ]);
      expect((await kick(env.rep)).status).toBe('empty');
      expect((await kick(env.rep)).status).toBe('empty');
    });
  });

  it('concurrent writers on both sources during repeated kicks end identical everywhere', async () => {
    const ddl = 'CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL, w text)';
    await withSync({ a: 'source', b: 'source', c: 'target' }, ddl, { tables: ['t'] }, async (env) => {
      const writers: pg.Client[] = [];
      for (const src of ['a', 'b']) {
        for (let i = 0; i < 3; i++) writers.push(await connect(env.db[src]!));
      }
      let seed = 12345;
      const rnd = () => {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        return seed / 4294967296;
      };
      const stopAt = Date.now() + 3000;
      let ops = 0;
      const work = writers.map(async (cl, w) => {
        while (Date.now() < stopAt) {
          const id = 1 + Math.floor(rnd() * 40);
          const p = rnd();
          if (p < 0.5) {
            await cl.query(
              `INSERT INTO t (id, v, w) VALUES ($1, 1, $2) ON CONFLICT (id) DO UPDATE SET v = t.v + 1, w = EXCLUDED.w`,
              [id, `w${w}`],
            );
          } else if (p < 0.8) {
            await cl.query(`UPDATE t SET v = v + 10, w = $2 WHERE id = $1`, [id, `u${w}`]);
          } else {
            await cl.query(`DELETE FROM t WHERE id = $1`, [id]);
          }
          ops++;
          if (ops % 7 === 0) await sleep(1);
        }
      });
      let runs = 0;
      const kicking = (async () => {
        while (Date.now() < stopAt) {
          await kick(env.rep);
          runs++;
          await sleep(50);
        }
      })();
      await Promise.all([...work, kicking]);
      expect(runs).toBeGreaterThan(1);
      expect(ops).toBeGreaterThan(100);

      const final = await kick(env.rep);
      expect(final.sync).toBe('s');
      const rows = await expectConverged(env, 't');
      expect(rows.length).toBeGreaterThan(0);
      expect((await kick(env.rep)).status).toBe('empty');
      expect((await kick(env.rep)).status).toBe('empty');
      expect(await expectConverged(env, 't')).toEqual(rows);
    });
  }, 30_000);
});

describe('multi-master: conflict strategies (three sources, one target)', () => {
  it("'latest': per key, the source whose newest change is most recent wins", async () => {
    await checkStrategy('latest', lastWriter);
  });

  it("precedence list ['c','a','b']: the first listed database that changed the key wins", async () => {
    const list = ['c', 'a', 'b'];
    await checkStrategy(list, (c) => list.find((db) => writersOf(c).includes(db))!);
  });

  it("'skip': every database keeps its own version, and the key moves again with a later change", async () => {
    await checkStrategy('skip', () => 'skip', async (env, state) => {
      // Key 3 (updated on a and b): c changes it now, and c's row goes everywhere.
      await env.client.c!.query(`UPDATE t SET v = 'c-later', n = 1000 WHERE id = 3`);
      // Key 7 (updated on a, deleted on b): b inserts it again, and b's row goes everywhere.
      await env.client.b!.query(`INSERT INTO t VALUES (7, 'b-later', 1001)`);
      // Key 11 (deleted on a and b, still on c and d): c changes it, so it comes back everywhere.
      await env.client.c!.query(`UPDATE t SET v = 'c-back', n = 1002 WHERE id = 11`);
      const r = await kick(env.rep);
      expect(r.status).toBe('ok');
      expect(r.tables['public.t']!.conflicts).toBe(0);
      for (const n of env.names) {
        const rows = await env.db[n]!.sql<{ id: number; v: string }>(`SELECT id, v FROM t WHERE id IN (3, 7, 11) ORDER BY id`);
        expect(rows, `keys 3, 7, 11 on ${n}`).toEqual([
          { id: 3, v: 'c-later' },
          { id: 7, v: 'b-later' },
          { id: 11, v: 'c-back' },
        ]);
      }
      // Skipped keys nobody touched again still differ: key 4 is b's version on b, a's on a.
      const k4 = async (n: string) => (await env.db[n]!.sql<{ v: string }>(`SELECT v FROM t WHERE id = 4`))[0]?.v;
      expect(await k4('a')).toBe(state.a!.get(4)!.v);
      expect(await k4('b')).toBe(state.b!.get(4)!.v);
      expect(await k4('d')).toBe('seed');
      expect((await kick(env.rep)).status).toBe('empty');
    });
  });

  it('a custom async resolver picks a winner from the changed rows and their times', async () => {
    const seen: Conflict[] = [];
    // b wins where it took part; otherwise the newest change (by the changedAt it is given).
    const resolver = async (c: Conflict) => {
      seen.push(c);
      await sleep(2);
      if ('b' in c.rows) return { winner: 'b' };
      const newest = Object.entries(c.changedAt).sort((x, y) => y[1].getTime() - x[1].getTime())[0]![0];
      return { winner: newest };
    };
    await checkStrategy(resolver, (c) => (writersOf(c).includes('b') ? 'b' : lastWriter(c)));
    expect(seen).toHaveLength(conflictCount);
    for (const c of seen) {
      const k = CASES.find((x) => x.id === c.key.id)!;
      expect(c.sync).toBe('s');
      expect(c.table).toBe('public.t');
      expect(Object.keys(c.rows).sort()).toEqual(writersOf(k).sort());
      expect(Object.keys(c.changedAt).sort()).toEqual(writersOf(k).sort());
      for (const d of Object.values(c.changedAt)) expect(d).toBeInstanceOf(Date);
      // The last writer's change is the newest.
      const newest = Object.entries(c.changedAt).sort((x, y) => y[1].getTime() - x[1].getTime())[0]![0];
      expect(newest, `key ${c.key.id}`).toBe(lastWriter(k));
      // A source that deleted the key shows null.
      for (const [db, row] of Object.entries(c.rows)) {
        const lastOp = [...k.writes].reverse().find(([w]) => w === db)![1];
        if (lastOp === 'del') expect(row, `key ${c.key.id} on ${db}`).toBeNull();
        else expect(row, `key ${c.key.id} on ${db}`).toMatchObject({ id: k.id, v: expect.stringMatching(new RegExp(`^${db}\\d+$`)) });
      }
    }
  });

  it("'random': a winner among the contenders per key, and every database converges to its version", async () => {
    await withSync(ROLES3, CASE_DDL, { tables: ['t'], conflictStrategy: 'random' }, async (env) => {
      const state = await playCases(env, CASES);
      const r = await kick(env.rep);
      expect(r.tables['public.t']!.conflicts).toBe(conflictCount);
      const events = new Map(env.conflicts.map((e) => [e.key.id as number, e]));
      expect(events.size).toBe(conflictCount);
      for (const e of env.conflicts) {
        const c = CASES.find((x) => x.id === e.key.id)!;
        expect(e).toMatchObject({ sync: 's', table: 'public.t', resolution: 'winner' });
        expect(writersOf(c)).toContain(e.winner);
      }
      const outcome = (c: Case) => events.get(c.id)!.winner!;
      expect(await contentsOf(env, 't')).toEqual(expectedContents(env, CASES, state, outcome));
      await expectConverged(env, 't');
      expect((await kick(env.rep)).status).toBe('empty');
    });
  });

  it("'abort': the kick rejects with CONFLICT and no database changes", async () => {
    await withSync(ROLES3, CASE_DDL, { tables: ['t'], conflictStrategy: 'abort' }, async (env) => {
      await playCases(env, CASES);
      const before = await contentsOf(env, 't');
      const err = await caught(env.rep.kick('s'));
      expect(isPgferryError(err), describeError(err)).toBe(true);
      expect((err as { code: string }).code).toBe('CONFLICT');
      expect((err as Error).message).toContain('public.t');
      expect(await contentsOf(env, 't')).toEqual(before);
      // The changes stay pending: the next kick meets the same conflicts.
      const again = await caught(env.rep.kick('s'));
      expect((again as { code: string }).code).toBe('CONFLICT');
      expect(await contentsOf(env, 't')).toEqual(before);
    });
  });
});

describe('multi-master: custom resolvers and per-table strategies', () => {
  const DDL = `CREATE TABLE t (id int PRIMARY KEY, name text, qty int);
               INSERT INTO t SELECT g, 'seed', 0 FROM generate_series(1, 5) g;`;

  it('a resolver may pick a winner, merge two rows column by column, or skip', async () => {
    const seen: Conflict[] = [];
    const resolver = async (c: Conflict) => {
      seen.push(c);
      await sleep(5);
      switch (c.key.id) {
        case 1:
          return { winner: 'b' };
        case 2:
          // name from a, qty from b
          return { row: { id: 2, name: c.rows.a!.name, qty: c.rows.b!.qty } };
        case 3:
          return 'skip' as const;
        default:
          return { winner: 'a' };
      }
    };
    await withSync({ a: 'source', b: 'source', c: 'target' }, DDL, { tables: ['t'], conflictStrategy: resolver }, async (env) => {
      const { a, b } = env.client;
      await a!.query(`UPDATE t SET name = 'a1' WHERE id = 1`);
      await a!.query(`UPDATE t SET name = 'name-from-a', qty = 1 WHERE id = 2`);
      await a!.query(`UPDATE t SET name = 'a3' WHERE id = 3`);
      await a!.query(`UPDATE t SET name = 'a4', qty = 4 WHERE id = 4`);
      await a!.query(`UPDATE t SET name = 'a5' WHERE id = 5`);
      await sleep(25);
      await b!.query(`UPDATE t SET name = 'b1', qty = 10 WHERE id = 1`);
      await b!.query(`UPDATE t SET name = 'name-from-b', qty = 22 WHERE id = 2`);
      await b!.query(`UPDATE t SET name = 'b3' WHERE id = 3`);
      await b!.query(`DELETE FROM t WHERE id = 4`);
      const r = await kick(env.rep);
      expect(r.tables['public.t']!.conflicts).toBe(4);

      seen.sort((x, y) => (x.key.id as number) - (y.key.id as number));
      expect(seen.map((c) => c.key)).toEqual([{ id: 1 }, { id: 2 }, { id: 3 }, { id: 4 }]);
      for (const c of seen) {
        expect(c.sync).toBe('s');
        expect(c.table).toBe('public.t');
        expect(c.changedAt.a).toBeInstanceOf(Date);
        expect(c.changedAt.b).toBeInstanceOf(Date);
        expect(c.changedAt.a!.getTime()).toBeLessThan(c.changedAt.b!.getTime());
      }
      expect(seen[0]!.rows).toEqual({ a: { id: 1, name: 'a1', qty: 0 }, b: { id: 1, name: 'b1', qty: 10 } });
      expect(seen[1]!.rows).toEqual({ a: { id: 2, name: 'name-from-a', qty: 1 }, b: { id: 2, name: 'name-from-b', qty: 22 } });
      expect(seen[3]!.rows).toEqual({ a: { id: 4, name: 'a4', qty: 4 }, b: null });

      const all = await contentsOf(env, 't');
      const common = ['(1,b1,10)', '(2,name-from-a,22)', '(4,a4,4)', '(5,a5,0)'];
      expect(all.a).toEqual([...common, '(3,a3,0)'].sort());
      expect(all.b).toEqual([...common, '(3,b3,0)'].sort());
      expect(all.c).toEqual([...common, '(3,seed,0)'].sort());
      expect(env.conflicts.map(pickConflict).sort(byKey)).toEqual([
        { sync: 's', table: 'public.t', key: { id: 1 }, resolution: 'winner', winner: 'b' },
        { sync: 's', table: 'public.t', key: { id: 2 }, resolution: 'merged', winner: null },
        { sync: 's', table: 'public.t', key: { id: 3 }, resolution: 'skip', winner: null },
        { sync: 's', table: 'public.t', key: { id: 4 }, resolution: 'winner', winner: 'a' },
      ]);
      // The merged row written on a and b is not echoed.
      expect((await kick(env.rep)).status).toBe('empty');
      expect((await kick(env.rep)).status).toBe('empty');
      expect(seen).toHaveLength(4);
    });
  });

  it('a synchronous resolver that merges rows also works, and a merged insert vs insert lands everywhere', async () => {
    const resolver = (c: Conflict) => ({
      row: { ...c.key, name: (c.rows.a?.name ?? c.rows.b?.name) as string, qty: (c.rows.b?.qty ?? c.rows.a?.qty) as number },
    });
    await withSync({ a: 'source', b: 'source', c: 'target' }, DDL, { tables: ['t'], conflictStrategy: resolver }, async (env) => {
      await env.client.a!.query(`INSERT INTO t VALUES (10, 'ten-a', 1)`);
      await env.client.b!.query(`INSERT INTO t VALUES (10, 'ten-b', 2)`);
      const r = await kick(env.rep);
      expect(r.tables['public.t']!.conflicts).toBe(1);
      const rows = await expectConverged(env, 't');
      expect(rows).toContain('(10,ten-a,2)');
      expect(env.conflicts.map(pickConflict)).toEqual([
        { sync: 's', table: 'public.t', key: { id: 10 }, resolution: 'merged', winner: null },
      ]);
      expect((await kick(env.rep)).status).toBe('empty');
    });
  });

  it("per-table strategies: { default: 'latest', tables: { 'public.t2': ['b','a'] } }", async () => {
    const ddl = `CREATE TABLE t (id int PRIMARY KEY, v text);
                 CREATE TABLE t2 (id int PRIMARY KEY, v text);
                 INSERT INTO t VALUES (1, 'seed'), (2, 'seed');
                 INSERT INTO t2 VALUES (1, 'seed'), (2, 'seed');`;
    const strategy = { default: 'latest' as const, tables: { 'public.t2': ['b', 'a'] } };
    await withSync({ a: 'source', b: 'source', c: 'target' }, ddl, { tables: ['t', 't2'], conflictStrategy: strategy }, async (env) => {
      const { a, b } = env.client;
      for (const tb of ['t', 't2']) {
        await b!.query(`UPDATE ${tb} SET v = 'b' WHERE id = 1`);
        await a!.query(`UPDATE ${tb} SET v = 'a' WHERE id = 2`);
      }
      await sleep(25);
      for (const tb of ['t', 't2']) {
        await a!.query(`UPDATE ${tb} SET v = 'a' WHERE id = 1`);
        await b!.query(`UPDATE ${tb} SET v = 'b' WHERE id = 2`);
      }
      const r = await kick(env.rep);
      expect(r.tables['public.t']!.conflicts).toBe(2);
      expect(r.tables['public.t2']!.conflicts).toBe(2);
      expect(await expectConverged(env, 't')).toEqual(['(1,a)', '(2,b)']);
      expect(await expectConverged(env, 't2')).toEqual(['(1,b)', '(2,b)']);
      expect(env.conflicts.map(pickConflict).sort(byKey)).toEqual([
        { sync: 's', table: 'public.t', key: { id: 1 }, resolution: 'winner', winner: 'a' },
        { sync: 's', table: 'public.t', key: { id: 2 }, resolution: 'winner', winner: 'b' },
        { sync: 's', table: 'public.t2', key: { id: 1 }, resolution: 'winner', winner: 'b' },
        { sync: 's', table: 'public.t2', key: { id: 2 }, resolution: 'winner', winner: 'b' },
      ]);
      expect((await kick(env.rep)).status).toBe('empty');
    });
  });
});

describe('multi-master: foreign keys, user triggers', () => {
  it('foreign keys between replicated tables hold on every database after every run (tables listed child first)', async () => {
    const ddl = `CREATE TABLE parent (id int PRIMARY KEY, name text NOT NULL);
                 CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent (id), note text);`;
    await withSync({ a: 'source', b: 'source', c: 'target' }, ddl, { tables: ['child', 'parent'] }, async (env) => {
      const { a, b } = env.client;
      const round = async (label: string) => {
        const r = await kick(env.rep);
        expect(r.status, label).toBe('ok');
        await expectConverged(env, 'parent');
        await expectConverged(env, 'child');
        for (const n of env.names) {
          const orphans = await env.db[n]!.sql(`SELECT c.id FROM child c LEFT JOIN parent p ON p.id = c.parent_id WHERE p.id IS NULL`);
          expect(orphans, `${label}: orphans on ${n}`).toEqual([]);
        }
        expect((await kick(env.rep)).status, `${label}: second kick`).toBe('empty');
      };

      // Parents and children inserted on a, in one transaction and in several.
      await a!.query(`BEGIN; INSERT INTO parent VALUES (1, 'p1'), (2, 'p2'), (3, 'p3');
                      INSERT INTO child VALUES (10, 1, 'c10'), (11, 1, 'c11'), (20, 2, 'c20'), (30, 3, 'c30'); COMMIT;`);
      await b!.query(`INSERT INTO parent VALUES (5, 'p5')`);
      await b!.query(`INSERT INTO child VALUES (50, 5, 'c50')`);
      await round('round 1');
      expect(await tableContents(env.db.c!, 'child')).toHaveLength(5);

      // b deletes a parent (written on a) and its children; a adds a parent and a child and moves a child.
      await b!.query(`BEGIN; DELETE FROM child WHERE parent_id = 1; DELETE FROM parent WHERE id = 1; COMMIT;`);
      await a!.query(`INSERT INTO parent VALUES (4, 'p4')`);
      await a!.query(`INSERT INTO child VALUES (40, 4, 'c40')`);
      await a!.query(`UPDATE child SET parent_id = 3 WHERE id = 20`);
      await round('round 2');
      expect(await tableContents(env.db.c!, 'parent')).toEqual(['(2,p2)', '(3,p3)', '(4,p4)', '(5,p5)']);

      // a deletes a parent written on b with its child; b deletes a parent whose last child moved away.
      await a!.query(`BEGIN; DELETE FROM child WHERE parent_id = 5; DELETE FROM parent WHERE id = 5; COMMIT;`);
      await b!.query(`DELETE FROM parent WHERE id = 2`);
      await b!.query(`BEGIN; INSERT INTO parent VALUES (6, 'p6'); INSERT INTO child VALUES (60, 6, 'c60'), (61, 6, 'c61'); COMMIT;`);
      await round('round 3');
      expect(await tableContents(env.db.c!, 'parent')).toEqual(['(3,p3)', '(4,p4)', '(6,p6)']);
      expect(await tableContents(env.db.c!, 'child')).toEqual(['(20,3,c20)', '(30,3,c30)', '(40,4,c40)', '(60,6,c60)', '(61,6,c61)']);

      // Children and then their parent deleted on one side, a new parent with a child on the other.
      await a!.query(`DELETE FROM child WHERE parent_id = 3`);
      await a!.query(`DELETE FROM parent WHERE id = 3`);
      await b!.query(`BEGIN; INSERT INTO parent VALUES (7, 'p7'); INSERT INTO child VALUES (70, 7, 'c70'); COMMIT;`);
      await round('round 4');
      expect(await tableContents(env.db.c!, 'parent')).toEqual(['(4,p4)', '(6,p6)', '(7,p7)']);
    });
  });

  it('a user trigger on the target table fires for replicated rows', async () => {
    const ddl = `CREATE TABLE t (id int PRIMARY KEY, v text);
                 CREATE TABLE audit (n serial PRIMARY KEY, op text NOT NULL, id int NOT NULL, v text);`;
    await withSync({ a: 'source', b: 'source', c: 'target' }, ddl, { tables: ['t'] }, async (env) => {
      await env.db.c!.sql(`CREATE FUNCTION audit_t() RETURNS trigger LANGUAGE plpgsql AS $$
                             BEGIN INSERT INTO audit (op, id, v) VALUES (TG_OP, NEW.id, NEW.v); RETURN NULL; END $$`);
      await env.db.c!.sql(`CREATE TRIGGER audit_t AFTER INSERT OR UPDATE ON t FOR EACH ROW EXECUTE FUNCTION audit_t()`);
      await env.client.a!.query(`INSERT INTO t VALUES (1, 'one'), (2, 'two')`);
      await env.client.b!.query(`INSERT INTO t VALUES (3, 'three')`);
      await kick(env.rep);
      await expectConverged(env, 't');
      const audit1 = await env.db.c!.sql<{ id: number; v: string }>(`SELECT id, v FROM audit ORDER BY id, n`);
      expect(audit1).toEqual([
        { id: 1, v: 'one' },
        { id: 2, v: 'two' },
        { id: 3, v: 'three' },
      ]);
      await env.client.b!.query(`UPDATE t SET v = 'two-b' WHERE id = 2`);
      await kick(env.rep);
      await expectConverged(env, 't');
      const audit2 = await env.db.c!.sql<{ id: number; v: string }>(`SELECT id, v FROM audit ORDER BY n`);
      expect(audit2.slice(3)).toEqual([{ id: 2, v: 'two-b' }]);
      // The sources have no trigger: nothing written there.
      expect(await env.db.a!.sql(`SELECT * FROM audit`)).toEqual([]);
    });
  });
});

describe('multi-master: unique violation on a non-key column', () => {
  const DDL = `CREATE TABLE t (id int PRIMARY KEY, email text UNIQUE, note text)`;
  const writeCollision = async (env: Env) => {
    await env.client.a!.query(`INSERT INTO t VALUES (1, 'dup@example.com', 'a'), (3, 'a3@example.com', 'a')`);
    await sleep(25);
    await env.client.b!.query(`INSERT INTO t VALUES (2, 'dup@example.com', 'b'), (4, 'b4@example.com', 'b')`);
  };

  it('without a hook the kick rejects with CONSTRAINT_VIOLATION naming the constraint, and nothing is applied', async () => {
    await withSync({ a: 'source', b: 'source', c: 'target' }, DDL, { tables: ['t'] }, async (env) => {
      await writeCollision(env);
      const before = await contentsOf(env, 't');
      const err = await caught(env.rep.kick('s'));
      expect(isPgferryError(err), describeError(err)).toBe(true);
      expect((err as { code: string }).code).toBe('CONSTRAINT_VIOLATION');
      expect((err as Error).message).toContain('t_email_key');
      expect((err as Error).message).toContain('public.t');
      expect(await contentsOf(env, 't')).toEqual(before);
      expect(before.c).toEqual([]);
      // Pending changes are kept: the same failure again, still nothing applied.
      const again = await caught(env.rep.kick('s'));
      expect((again as { code: string }).code).toBe('CONSTRAINT_VIOLATION');
      expect(await contentsOf(env, 't')).toEqual(before);
    });
  });

  const hookSetups: [string, Roles][] = [
    ['two sources and a target', { a: 'source', b: 'source', c: 'target' }],
    ['two sources', { a: 'source', b: 'source' }],
  ];
  it.each(hookSetups)('an onException hook that deletes the loser on the failing database settles it, and all databases converge (%s)', async (_, roles) => {
    const calls: Omit<ExceptionContext, 'query' | 'error'>[] = [];
    const onException = async (ctx: ExceptionContext) => {
      calls.push({ sync: ctx.sync, table: ctx.table, database: ctx.database, constraint: ctx.constraint, keys: ctx.keys });
      expect(ctx.error).toBeInstanceOf(Error);
      // The row already on the failing database that holds the address (and is not one of the
      // rows being applied) loses it.
      const incoming = ctx.keys.map((k) => k.id as number);
      await ctx.query(ctx.database, 'DELETE FROM t WHERE email = $1 AND NOT (id = ANY($2::int[]))', ['dup@example.com', incoming]);
      return 'retry' as const;
    };
    await withSync(roles, DDL, { tables: ['t'], onException }, async (env) => {
      await writeCollision(env);
      const r = await kick(env.rep);
      expect(r.status).toBe('ok');
      const rows = await expectConverged(env, 't');
      expect(rows.filter((x) => x.includes('dup@example.com'))).toHaveLength(1);
      expect(rows).toContain('(3,a3@example.com,a)');
      expect(rows).toContain('(4,b4@example.com,b)');
      expect(calls.length).toBeGreaterThan(0);
      for (const c of calls) {
        expect(c.sync).toBe('s');
        expect(c.table).toBe('public.t');
        expect(Object.keys(roles)).toContain(c.database);
        expect(c.constraint).toBe('t_email_key');
        expect(Array.isArray(c.keys)).toBe(true);
        expect(c.keys.length).toBeGreaterThan(0);
        for (const k of c.keys) expect(Object.keys(k)).toEqual(['id']);
      }
      // The hook's own writes are captured like an application's, so one more run may carry
      // them (state-based: nothing changes); after that, nothing moves.
      await kick(env.rep);
      expect(await expectConverged(env, 't')).toEqual(rows);
      expect((await kick(env.rep)).status).toBe('empty');
    });
  });

  it('an onException hook settles a unique violation against a stray row on the target', async () => {
    const calls: Omit<ExceptionContext, 'query' | 'error'>[] = [];
    const onException = async (ctx: ExceptionContext) => {
      calls.push({ sync: ctx.sync, table: ctx.table, database: ctx.database, constraint: ctx.constraint, keys: ctx.keys });
      await ctx.query(ctx.database, `UPDATE t SET email = 'renamed-' || id || '-' || email WHERE email = $1 AND NOT (id = ANY($2::int[]))`, [
        'dup@example.com',
        ctx.keys.map((k) => k.id as number),
      ]);
      return 'retry' as const;
    };
    await withSync({ a: 'source', b: 'source', c: 'target' }, DDL, { tables: ['t'], onException }, async (env) => {
      // c holds a row of its own (not replicated) with the address that a now uses.
      await env.db.c!.sql(`INSERT INTO t VALUES (99, 'dup@example.com', 'stray')`);
      await env.client.a!.query(`INSERT INTO t VALUES (1, 'dup@example.com', 'a')`);
      await env.client.b!.query(`INSERT INTO t VALUES (2, 'b2@example.com', 'b')`);
      const r = await kick(env.rep);
      expect(r.status).toBe('ok');
      expect(await tableContents(env.db.c!, 't')).toEqual(['(1,dup@example.com,a)', '(2,b2@example.com,b)', '(99,renamed-99-dup@example.com,stray)']);
      await expectConverged(env, 't', ['a', 'b']);
      expect(await tableContents(env.db.a!, 't')).toEqual(['(1,dup@example.com,a)', '(2,b2@example.com,b)']);
      expect(calls).toEqual([
        { sync: 's', table: 'public.t', database: 'c', constraint: 't_email_key', keys: expect.arrayContaining([{ id: 1 }]) },
      ]);
      expect((await kick(env.rep)).status).toBe('empty');
    });
  });
});
