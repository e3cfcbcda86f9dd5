/**
 * Many instances (DESIGN.md invariant 9): several replicators with the same configuration, in
 * one process or many, as every replica of a service runs them. Runs of a sync never overlap,
 * kicks from any instance resolve, background work happens in one instance and moves to
 * another when it dies, a run that lost its lock cannot write over a newer one, and the
 * one-time copy happens once in the sync's life.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { PostgresControlStore, type Replicator, isPgferryError, type CopyProgressEvent, type SyncConfig } from '../src/index.js';
import { connect, createDatabases, listenerStates, sqlAll, tableContents, type TestDb } from './helpers/db.js';
import { record } from './helpers/events.js';
import { stopReplicatorsAfterEach } from './helpers/replicators.js';
import { sleep, waitFor } from './helpers/wait.js';
import { startWriters } from './helpers/writers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const replicators = stopReplicatorsAfterEach();
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

const DDL = `CREATE TABLE public.t (id int PRIMARY KEY, v text, n int NOT NULL DEFAULT 0)`;
const T = 'public.t';

type Urls = Record<string, string | { connectionString: string; application_name: string }>;

/** A started-or-not replicator over `urls` with sync `s` on public.t. */
async function instance(name: string, urls: Urls, sync: Partial<SyncConfig> & Pick<SyncConfig, 'databases'>, opts: { store?: PostgresControlStore } = {}): Promise<Replicator> {
  const rep = replicators.create({ name, checkIntervalMs: 60_000, retry: { minDelayMs: 50, maxDelayMs: 400 }, ...opts });
  for (const [db, url] of Object.entries(urls)) await rep.addDatabase(db, url);
  await rep.addSync('s', { tables: [T], ...sync });
  return rep;
}

/** Application writes on `keys` hot keys through `n` connections until stopped. */
function hotWriters(db: TestDb, n: number, keys: number) {
  let i = 0;
  return startWriters(db.url, n, async (c) => {
    i++;
    const id = (i * 7919) % keys;
    await c.query(`INSERT INTO t (id, v, n) VALUES ($1, $2, 1) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v, n = t.n + 1`, [id, `w-${i}`]);
  });
}

/** Databases a and b with table t, and one replicator per name over them with sync `s`, installed. */
async function cluster(names: string[], sync: Partial<SyncConfig> & Pick<SyncConfig, 'databases'>): Promise<{ a: TestDb; b: TestDb; rs: Replicator[] }> {
  const [a, b] = (await createDatabases(2)) as [TestDb, TestDb];
  await sqlAll([a, b], DDL);
  const rs = await Promise.all(names.map((n) => instance(n, { a: a.url, b: b.url }, sync)));
  await rs[0]!.install();
  return { a, b, rs };
}

async function expectEqual(dbs: TestDb[], table = T): Promise<string[]> {
  const want = await tableContents(dbs[0]!, table);
  for (const db of dbs.slice(1)) expect(await tableContents(db, table)).toEqual(want);
  return want;
}

describe('many instances', () => {
  it('kicks from three replicators at once all resolve, with no sync:error, and the target converges', async () => {
    const { a, b, rs } = await cluster(['r1', 'r2', 'r3'], { databases: { a: 'source', b: 'target' } });
    const events = rs.map((r) => record(r, ['sync:error', 'error']));
    for (const r of rs) await r.start();
    const writers = hotWriters(a, 3, 200);
    let kicks = 0;
    const rejected: unknown[] = [];
    const until = Date.now() + 3_000;
    await Promise.all(
      rs.map(async (r) => {
        while (Date.now() < until) {
          await r.kick('s').then(
            () => kicks++,
            (e: unknown) => rejected.push(e),
          );
        }
      }),
    );
    await writers.stop();
    expect(writers.ops).toBeGreaterThan(100);
    expect(rejected.map((e) => (isPgferryError(e) ? `${e.code}: ${e.message}` : String(e)))).toEqual([]);
    expect(kicks).toBeGreaterThan(10);
    await rs[1]!.kick('s');
    for (const ev of events) expect([...ev.errors.map((e) => `${e.error.code}: ${e.error.message}`), ...ev.fatal.map((e) => e.message)]).toEqual([]);
    expect((await expectEqual([a, b])).length).toBe(200);
  });

  it('one commit with three started instances leads to one run, in the instance that holds the sync; another takes over when it stops', async () => {
    const { a, b, rs } = await cluster(['r1', 'r2', 'r3'], { databases: { a: 'source', b: 'target' } });
    const starts = new Map<string, string[]>(rs.map((r) => [r.name, []]));
    for (const r of rs) {
      r.on('sync:start', (e) => starts.get(r.name)!.push(e.reason));
      await r.start();
    }
    const owners = rs.map((r) => r.status().syncs[0]!.owner);
    const holder = rs.find((r) => r.status().syncs[0]!.owner === r.name)!;
    expect(holder).toBeDefined();
    // The others see the holder (their first try met its lock).
    expect(owners).toEqual([holder.name, holder.name, holder.name]);
    for (const r of rs) starts.get(r.name)!.length = 0;

    await a.sql(`INSERT INTO t (id, v) VALUES (1, 'one')`);
    await waitFor('the row on the target', async () => (await b.sql(`SELECT 1 FROM t WHERE id = 1`)).length === 1);
    await holder.kick('s'); // waits for any run in flight anywhere
    for (const r of rs) expect(starts.get(r.name), r.name).toEqual(r === holder ? ['autokick', 'kick'] : []);
    // The standbys hold nothing: their listeners went quiet (writers no longer wake them).
    const quietStandbys = ['LISTEN "pgferry"', 'UNLISTEN "pgferry"', 'UNLISTEN "pgferry"'];
    await waitFor('quiet standbys', async () => JSON.stringify(await listenerStates(a)) === JSON.stringify(quietStandbys));

    // The holder goes away: another instance holds the sync within seconds and runs it.
    await holder.stop();
    const t0 = Date.now();
    const rest = rs.filter((r) => r !== holder);
    await waitFor('a new holder', () => rest.some((r) => r.status().syncs[0]!.owner === r.name), { timeoutMs: 15_000 });
    expect(Date.now() - t0).toBeLessThan(10_000);
    // Its first run listened again before its snapshot: the next commit is heard (the periodic check is a minute away).
    await waitFor('the new holder listening', async () => (await listenerStates(a))[0] === 'LISTEN "pgferry"');
    await a.sql(`INSERT INTO t (id, v) VALUES (2, 'two')`);
    await waitFor('the second row on the target', async () => (await b.sql(`SELECT 1 FROM t WHERE id = 2`)).length === 1);
    await expectEqual([a, b]);
  });

  it('multi-master with two started instances and writers on both sources converges', async () => {
    const { a, b, rs } = await cluster(['m1', 'm2'], { databases: { a: 'source', b: 'source' }, conflictStrategy: 'latest' });
    const events = rs.map((r) => record(r, ['sync:error']));
    for (const r of rs) await r.start();
    const wa = hotWriters(a, 2, 100);
    const wb = hotWriters(b, 2, 100);
    const until = Date.now() + 2_500;
    await Promise.all(rs.map(async (r) => { while (Date.now() < until) await r.kick('s'); }));
    await wa.stop();
    await wb.stop();
    await rs[0]!.kick('s');
    await rs[1]!.kick('s');
    for (const ev of events) expect(ev.errors.filter((e) => !e.willRetry).map((e) => `${e.error.code}: ${e.error.message}`)).toEqual([]);
    expect((await expectEqual([a, b])).length).toBe(100);
  });

  it('a run that lost its lock cannot commit rows over a newer run', async () => {
    const [a, b] = (await createDatabases(2)) as [TestDb, TestDb];
    await sqlAll([a, b], DDL);
    // On the target, writes of the instance whose connections are named 'slow' wait for lock 777.
    await b.sql(`CREATE FUNCTION gate() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN IF current_setting('application_name') = 'slow' THEN PERFORM pg_advisory_xact_lock(777); END IF; RETURN NULL; END $$;
                 CREATE TRIGGER gate BEFORE INSERT OR UPDATE ON t FOR EACH STATEMENT EXECUTE FUNCTION gate()`);
    const roles = { databases: { a: 'source', b: 'target' } as const, autokick: false };
    const slow = await instance('slow', { a: { connectionString: a.url, application_name: 'slow-src' }, b: { connectionString: b.url, application_name: 'slow' } }, roles);
    const fast = await instance('fast', { a: a.url, b: b.url }, roles);
    await fast.install();
    await a.sql(`INSERT INTO t (id, v) VALUES (1, 'old')`);
    await fast.kick('s');

    const gate = await connect(b);
    await gate.query(`SELECT pg_advisory_lock(777)`);
    await a.sql(`UPDATE t SET v = 'older run' WHERE id = 1`);
    const stale = slow.kick('s').then(() => null, (e: unknown) => e);
    await waitFor('the slow run waiting at the gate', async () => (await b.sql(
      `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'slow' AND wait_event_type = 'Lock' AND wait_event = 'advisory'`,
    )).length === 1);
    // Its connection to the source dies: its lock goes with it, and a newer run goes ahead.
    await a.sql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'slow-src'`);
    await a.sql(`UPDATE t SET v = 'newer run' WHERE id = 1`);
    const r = await fast.kick('s', { timeoutMs: 10_000 });
    expect(r.tables[T]).toMatchObject({ upserted: 1 });
    expect(await b.sql(`SELECT v FROM t`)).toEqual([{ v: 'newer run' }]);

    await gate.query(`SELECT pg_advisory_unlock(777)`);
    const err = await stale;
    expect(isPgferryError(err)).toBe(true);
    expect((err as Error).message).toMatch(/a newer run already wrote to database "b"/);
    expect(await b.sql(`SELECT v FROM t`)).toEqual([{ v: 'newer run' }]);
    expect(await b.sql(`SELECT generation::text FROM pgferry.fences WHERE sync = 's'`)).toHaveLength(1);
  });

  it("onetimecopy 'always' copies once in the sync's life, across restarts; kick({ onetimecopy }) copies again", async () => {
    const [a, b, c] = (await createDatabases(3)) as [TestDb, TestDb, TestDb];
    await sqlAll([a, b], DDL);
    await a.sql(`INSERT INTO t (id, v) SELECT g, 'pre ' || g FROM generate_series(1, 1000) g`);
    const roles = { databases: { a: 'source', b: 'target' } as const, onetimecopy: 'always' as const, autokick: false };
    const store = () => new PostgresControlStore({ connection: c.url });
    const xmins = async () => new Set((await b.sql<{ x: string }>(`SELECT xmin::text AS x FROM t`)).map((r) => r.x));

    const first = await instance('first', { a: a.url, b: b.url }, roles, { store: store() });
    const copies: CopyProgressEvent[] = [];
    first.on('copy:progress', (e) => copies.push(e));
    await first.install();
    await first.kick('s');
    expect(copies.filter((e) => e.done).map((e) => e.rows)).toEqual([1000]);
    await first.stop();
    const before = await xmins();

    // A restart (a new process, the same store): no second copy, no target row rewritten.
    const second = await instance('second', { a: a.url, b: b.url }, roles, { store: store() });
    second.on('copy:progress', (e) => copies.push(e));
    await second.install();
    copies.length = 0;
    await a.sql(`UPDATE t SET v = 'changed' WHERE id = 5`);
    const r = await second.kick('s');
    expect(copies).toEqual([]);
    expect(r.tables[T]).toMatchObject({ upserted: 1, deleted: 0 });
    const after = await xmins();
    expect([...after].filter((x) => !before.has(x))).toHaveLength(1); // only the changed row
    await expectEqual([a, b]);

    // Asked for: a whole copy again.
    await b.sql(`DELETE FROM t WHERE id <= 10`);
    const forced = await second.kick('s', { onetimecopy: 'always' });
    expect(copies.filter((e) => e.done).map((e) => e.rows)).toEqual([1000]);
    expect(forced.status).toBe('ok');
    await expectEqual([a, b]);
    const runs = await second.store.runs('s');
    expect(runs.map((x) => x.instance)).toEqual(['second', 'second', 'first']);
  });

  it('three processes started on one sync, writers on hot keys, the holder SIGKILLed: a survivor takes over within 10 s and every row arrives', async () => {
    const [a, b] = (await createDatabases(2)) as [TestDb, TestDb];
    await sqlAll([a, b], DDL);
    const setup = await instance('setup', { a: a.url, b: b.url }, { databases: { a: 'source', b: 'target' } });
    await setup.install();
    await setup.stop();

    const events: Record<string, unknown>[] = [];
    const spawnInstance = (name: string) => {
      const child = spawn(process.execPath, ['--import', 'tsx', path.join('test', 'fixtures', 'instance.ts')], {
        cwd: ROOT,
        env: { ...process.env, PGFERRY_A_URL: a.url, PGFERRY_B_URL: b.url, PGFERRY_NAME: name },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(child);
      createInterface({ input: child.stdout! }).on('line', (line) => {
        try {
          events.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          events.push({ event: 'output', name, line });
        }
      });
      return child;
    };
    const names = ['p1', 'p2', 'p3'];
    const procs = new Map(names.map((n) => [n, spawnInstance(n)]));
    await waitFor('three instances ready', () => events.filter((e) => e.event === 'ready').length === 3, { timeoutMs: 30_000 });

    /** The instance holding sync s, read from the server's locks (of this database: other test files hold syncs named s too). */
    const holderName = async (): Promise<string | null> => {
      const r = await a.sql<{ app: string }>(
        `SELECT a.application_name AS app FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.granted AND l.classid = hashtext('pgferry.hold')::oid AND l.objid = hashtext('pgferry.s')::oid
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      );
      return r[0]?.app.replace(/^pgferry:/, '') ?? null;
    };
    const first = await holderName();
    expect(names).toContain(first);

    const writers = hotWriters(a, 3, 200);
    await waitFor('the holder applying rows', () => events.some((e) => e.event === 'sync:complete' && e.name === first && (e.rows as number) > 0), { timeoutMs: 10_000 });
    await sleep(500); // writes go on, runs follow them
    procs.get(first!)!.kill('SIGKILL');
    const killedAt = Date.now();
    await waitFor('another instance holding the sync', async () => {
      const h = await holderName();
      return h !== null && h !== first;
    }, { timeoutMs: 15_000 });
    const takeoverMs = Date.now() - killedAt;
    await sleep(1_000); // writes go on under the new holder
    await writers.stop();
    expect(writers.ops).toBeGreaterThan(200);

    // No kick: the new holder's autokick and checks deliver everything.
    await waitFor('the target equal to the source', async () => {
      const [x, y] = await Promise.all([tableContents(a, T), tableContents(b, T)]);
      return JSON.stringify(x) === JSON.stringify(y);
    }, { timeoutMs: 15_000, everyMs: 100 });
    expect(takeoverMs).toBeLessThan(10_000);
    const survivors = names.filter((n) => n !== first);
    const failures = events.filter((e) => survivors.includes(e.name as string) && (e.event === 'sync:error' || e.event === 'error'));
    expect(failures).toEqual([]);
    expect(events.some((e) => survivors.includes(e.name as string) && e.event === 'sync:complete' && (e.rows as number) > 0)).toBe(true);
    for (const n of survivors) procs.get(n)!.kill('SIGTERM');
    await waitFor('survivors stopped', () => survivors.every((n) => events.some((e) => e.event === 'stopped' && e.name === n)), { timeoutMs: 15_000 });
    expect((await expectEqual([a, b])).length).toBe(200);
  });
});
