/**
 * Always on: with start(), commits on a source reach the targets by themselves (autokick),
 * bursts of commits coalesce into few runs, kicks join runs in flight, background runs retry
 * transient failures and park on errors that need attention, large backlogs go in chunks,
 * consumed deltas are pruned, and stop() leaves nothing behind.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { Replicator, isPgferryError, PgferryError, type ReplicatorOptions, type SyncConfig } from '../src/index.js';
import { lockArgs, lockValues, runLock } from '../src/db/locks.js';
import { connect, count, createDatabases, listenerStates, sqlAll, tableChecksum, type TestDb } from './helpers/db.js';
import { describeError } from './helpers/errors.js';
import { record } from './helpers/events.js';
import { addDatabases, stopReplicatorsAfterEach } from './helpers/replicators.js';
import { sleep, waitFor, within } from './helpers/wait.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const replicators = stopReplicatorsAfterEach();

const DDL = `CREATE TABLE public.t (id int PRIMARY KEY, v text)`;
const T = 'public.t';
/** Small backoff so background retries happen within a test. */
const FAST: ReplicatorOptions = { checkIntervalMs: 60_000, retry: { minDelayMs: 50, maxDelayMs: 400 } };

/** Replicator over a (source) → b (target) with sync `s` on public.t (autokick on), installed. */
function setup(a: TestDb, b: TestDb, opts: ReplicatorOptions = FAST, sync: Partial<SyncConfig> = {}): Promise<Replicator> {
  return replicators.installed([a, b], { tables: [T], autokick: true, ...sync }, opts);
}

/** Two fresh databases with public.t, and a replicator a → b over it (see `setup`). */
async function pairWithT(sync: Partial<SyncConfig> = {}): Promise<{ a: TestDb; b: TestDb; rep: Replicator }> {
  const [a, b] = await createDatabases(2);
  await sqlAll([a!, b!], DDL);
  return { a: a!, b: b!, rep: await setup(a!, b!, FAST, sync) };
}

/**
 * A TCP proxy to the server of `url` that holds every new connection until release(): a
 * connection attempt that stays in flight as long as a test needs.
 */
async function heldProxy(url: string): Promise<{ url: string; waiting(): number; release(): void; close(): void }> {
  const target = new URL(url);
  const held: (() => void)[] = [];
  let open = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.pause();
    const pipe = () => {
      const upstream = net.connect(Number(target.port), target.hostname, () => {
        client.pipe(upstream).pipe(client);
        client.resume();
      });
      sockets.add(upstream);
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      client.on('close', () => upstream.destroy());
    };
    if (open) pipe();
    else held.push(pipe);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const proxied = new URL(url);
  proxied.port = String(port);
  return {
    url: proxied.toString(),
    waiting: () => held.length,
    release: () => {
      open = true;
      for (const p of held.splice(0)) p();
    },
    close: () => {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}

async function expectEqual(a: TestDb, b: TestDb, table = T): Promise<void> {
  expect(await tableChecksum(b, table)).toEqual(await tableChecksum(a, table));
}

/** Connections that pgferry (application_name 'pgferry') holds to a database. */
async function pgferryConnections(db: TestDb): Promise<number> {
  const r = await db.sql<{ n: string }>(
    `SELECT count(*)::text AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'pgferry' AND pid <> pg_backend_pid()`,
    [db.name],
  );
  return Number(r[0]!.n);
}

describe('always on: autokick', () => {
  it('a row inserted on the source appears on the target with no kick', async () => {
    const { a, b, rep } = await pairWithT();
    const ev = record(rep);
    await rep.start();
    expect(rep.status().started).toBe(true);

    await a!.sql(`INSERT INTO t VALUES (1, 'hello')`);
    await waitFor('row 1 on the target', async () => (await count(b!)) === 1, { timeoutMs: 5_000 });
    expect(await b!.sql(`SELECT id, v FROM t`)).toEqual([{ id: 1, v: 'hello' }]);

    // An UPDATE and a DELETE follow the same way.
    await a!.sql(`INSERT INTO t VALUES (2, 'two')`);
    await a!.sql(`UPDATE t SET v = 'changed' WHERE id = 1`);
    await waitFor('the update on the target', async () => (await b!.sql(`SELECT v FROM t WHERE id = 1`))[0]?.v === 'changed');
    await a!.sql(`DELETE FROM t WHERE id = 2`);
    await waitFor('the delete on the target', async () => (await count(b!)) === 1);
    await expectEqual(a!, b!);

    expect(ev.errors).toEqual([]);
    expect(ev.starts.length).toBeGreaterThan(0);
    expect(ev.starts.every((s) => s.sync === 's' && s.reason !== 'kick')).toBe(true);
    expect(ev.starts.some((s) => s.reason === 'autokick')).toBe(true);
  });

  it('1,000 commits in a burst lead to far fewer runs, and every row arrives', async () => {
    const { a, b, rep } = await pairWithT();
    await rep.start();
    // Let the catch-up run that start() makes pass, then count from here.
    await sleep(300);
    const ev = record(rep);

    const writers = await Promise.all([0, 1, 2, 3].map(() => connect(a!)));
    const N = 1000;
    await Promise.all(
      writers.map(async (c, w) => {
        for (let i = w; i < N; i += writers.length) await c.query(`INSERT INTO t VALUES ($1, $2)`, [i + 1, `row ${i + 1}`]);
      }),
    );
    await waitFor(`${N} rows on the target`, async () => (await count(b!)) === N, { timeoutMs: 15_000, everyMs: 100 });
    // Let any run still booked finish before counting.
    await waitFor('the runner to go idle', () => !rep.status().syncs[0]!.running, { timeoutMs: 5_000 });
    await sleep(200);

    await expectEqual(a!, b!);
    expect(ev.errors).toEqual([]);
    const runs = ev.starts.length;
    expect(runs).toBeGreaterThan(0);
    expect(runs, `${runs} runs for ${N} commits`).toBeLessThan(200);
    const upserted = ev.completes.reduce((n, r) => n + r.totals.upserted, 0);
    expect(upserted).toBe(N);
  });
});

/**
 * A TCP proxy to the server of `url` whose connections can be frozen one by one: freeze(port)
 * stops every byte both ways on the connection whose server side sees client port `port`
 * (pg_stat_activity.client_port), as a connection cut silently on the way would.
 */
async function freezableProxy(url: string): Promise<{ url: string; freeze(port: number): boolean; close(): void }> {
  const target = new URL(url);
  const pairs = new Map<number, { client: net.Socket; upstream: net.Socket }>();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    client.pause();
    const upstream = net.connect(Number(target.port), target.hostname, () => {
      pairs.set(upstream.localPort!, { client, upstream });
      client.pipe(upstream).pipe(client);
      client.resume();
    });
    for (const sock of [client, upstream]) sockets.add(sock);
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.on('close', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxied = new URL(url);
  proxied.port = String((server.address() as net.AddressInfo).port);
  return {
    url: proxied.toString(),
    freeze: (port) => {
      const pair = pairs.get(port);
      if (!pair) return false;
      pair.client.unpipe(pair.upstream);
      pair.upstream.unpipe(pair.client);
      pair.client.pause();
      pair.upstream.pause();
      return true;
    },
    close: () => {
      server.close();
      for (const sock of sockets) sock.destroy();
    },
  };
}

/** The state of the one replicator listener on `db` (see listenerStates). */
async function listenerState(db: TestDb): Promise<string | undefined> {
  const states = await listenerStates(db);
  return states.length <= 1 ? states[0] : `${states.length} listeners`;
}

/** A transaction holding `table` on `db` in SHARE mode: a run's writes to it wait (shown in pg_stat_activity). */
async function blockWrites(db: TestDb, table: string): Promise<{ blocked(): Promise<boolean>; release(): Promise<void> }> {
  const c = await connect(db);
  await c.query(`BEGIN; LOCK TABLE ${table} IN SHARE MODE`);
  return {
    blocked: async () =>
      (await db.sql(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pgferry' AND wait_event_type = 'Lock'`)).length > 0,
    release: async () => {
      await c.query('COMMIT');
      await c.end();
    },
  };
}

/**
 * A replicator started on sync `s` (a → b, autokick), with a reaching it through a
 * freezableProxy; freezeListener() silences its one listener connection.
 */
async function startedBehindProxy(): Promise<{ a: TestDb; b: TestDb; rep: Replicator; freezeListener(): Promise<void> }> {
  const [a, b] = await createDatabases(2);
  await sqlAll([a!, b!], DDL);
  const proxy = await freezableProxy(a!.url);
  onTestFinished(() => proxy.close());
  const rep = replicators.create(FAST);
  await rep.addDatabase('a', proxy.url);
  await rep.addDatabase('b', b!.url);
  await rep.addSync('s', { tables: [T], autokick: true, databases: { a: 'source', b: 'target' } });
  await rep.install();
  await rep.start();
  await waitFor('the listener', async () => (await listenerState(a!)) === 'LISTEN "pgferry"');
  const freezeListener = async (): Promise<void> => {
    const [listener] = await a!.sql<{ port: number }>(
      `SELECT client_port AS port FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pgferry' AND query ~ '^(UN)?LISTEN '`,
    );
    expect(proxy.freeze(listener!.port)).toBe(true);
  };
  return { a: a!, b: b!, rep, freezeListener };
}

describe('always on: quiet listener', () => {
  it('while a run is booked the listener stops listening; a commit meanwhile still arrives, and it listens again before that run', async () => {
    const { a, b, rep } = await pairWithT();
    // In order, as this process sends and hears them: replies to (UN)LISTEN, and run locks sent.
    const order: string[] = [];
    const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
    const query = proto.query;
    proto.query = function (this: pg.Client, ...args: unknown[]) {
      const text = typeof args[0] === 'string' ? args[0] : ((args[0] as { text?: string } | undefined)?.text ?? '');
      const res = query.apply(this, args);
      if (/^(UN)?LISTEN /.test(text)) void (res as Promise<unknown>).then(() => order.push(text.split(' ')[0]!), () => undefined);
      else if (text.includes('pg_catalog.pg_advisory_lock(')) order.push('lock');
      return res;
    };
    onTestFinished(() => {
      proto.query = query;
    });
    await rep.start();
    await waitFor('the listener', async () => (await listenerState(a)) === 'LISTEN "pgferry"');
    const ev = record(rep);

    // A run that cannot finish: its write on the target waits for a lock.
    const lock = await blockWrites(b, 't');
    await a.sql(`INSERT INTO t VALUES (1, 'one')`);
    await waitFor('the run to wait on the target', lock.blocked);
    // A commit books the next run: nothing more to hear until it starts.
    await a.sql(`INSERT INTO t VALUES (2, 'two')`);
    await waitFor('the listener to go quiet', async () => (await listenerState(a)) === 'UNLISTEN "pgferry"');
    expect(rep.status().syncs[0]!.running).toBe(true);
    // Committed while nobody listens: the booked run's snapshot has it.
    await a.sql(`INSERT INTO t VALUES (3, 'three')`);
    await lock.release();
    await waitFor('rows 1 to 3 on the target', async () => (await count(b)) === 3);
    expect(await listenerState(a)).toBe('LISTEN "pgferry"');
    // The booked run took its lock (and then its snapshot) only once LISTEN was in effect.
    const quiet = order.lastIndexOf('UNLISTEN');
    const nextLock = order.indexOf('lock', quiet);
    expect(quiet).toBeGreaterThan(-1);
    expect(order.slice(quiet, nextLock + 1)).toEqual(['UNLISTEN', 'LISTEN', 'lock']);
    // Listening again: a commit now is heard (the periodic check is a minute away).
    await waitFor('the runner to go idle', () => !rep.status().syncs[0]!.running && ev.completes.length >= 2);
    await a.sql(`INSERT INTO t VALUES (4, 'four')`);
    await waitFor('row 4 on the target', async () => (await count(b)) === 4);
    await expectEqual(a, b);
    expect(ev.errors).toEqual([]);
  });

  it('a quiet listener whose connection stops answering holds the booked run back at most 2 s; it reconnects and later commits are heard', async () => {
    const { a, b, rep, freezeListener } = await startedBehindProxy();

    const lock = await blockWrites(b, 't');
    await a.sql(`INSERT INTO t VALUES (1, 'one')`);
    await waitFor('the run to wait on the target', lock.blocked);
    await a.sql(`INSERT INTO t VALUES (2, 'two')`);
    await waitFor('the listener to go quiet', async () => (await listenerState(a)) === 'UNLISTEN "pgferry"');
    // The quiet listener's connection goes silent: its LISTEN will get no reply.
    await freezeListener();
    const t0 = Date.now();
    await lock.release();
    await waitFor('rows 1 and 2 on the target', async () => (await count(b)) === 2, { timeoutMs: 10_000 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2_000);
    // A new listener connection hears the next commit (the periodic check is a minute away).
    await waitFor('a new listener', async () => (await listenerStates(a)).includes('LISTEN "pgferry"'));
    await a.sql(`INSERT INTO t VALUES (3, 'three')`);
    await waitFor('row 3 on the target', async () => (await count(b)) === 3);
    await expectEqual(a, b);
  });

  it('stop() with a listener connection that stopped answering returns within seconds', async () => {
    const { a, b, rep, freezeListener } = await startedBehindProxy();
    await freezeListener();
    // Its goodbye never gets an answer: the connection is destroyed after a second.
    expect(await within(rep.stop(), 4_000)).not.toBeNull();
  });

  it('stays listening while another sync on the same source has no run booked', async () => {
    const [a, b] = await createDatabases(2);
    await sqlAll([a!, b!], `${DDL}; CREATE TABLE public.u (id int PRIMARY KEY, v text)`);
    const rep = replicators.create(FAST);
    await addDatabases(rep, [a!, b!], ['a', 'b']);
    const databases = { a: 'source', b: 'target' } as const;
    await rep.addSync('s', { tables: [T], autokick: true, databases });
    await rep.addSync('su', { tables: ['public.u'], autokick: true, databases });
    await rep.install();
    await rep.start();
    await waitFor('the listener', async () => (await listenerState(a!)) === 'LISTEN "pgferry"');

    // Sync s has a run waiting on the target and another one booked (the kick).
    const lock = await blockWrites(b!, 't');
    await a!.sql(`INSERT INTO t VALUES (1, 'one')`);
    await waitFor('the run of s to wait on the target', lock.blocked);
    const booked = rep.kick('s');
    // A commit to s's table is heard (here too) while s has its run booked...
    const ear = await connect(a!);
    const heard: string[] = [];
    ear.on('notification', (n) => heard.push(n.payload ?? ''));
    await ear.query('LISTEN pgferry');
    await a!.sql(`INSERT INTO t VALUES (2, 'two')`);
    await waitFor('the notification of public.t', () => heard.includes('public.t'));
    await ear.end();
    // ...but sync su has no run booked: its commits must still be heard.
    await a!.sql(`INSERT INTO u VALUES (1, 'u one')`);
    await waitFor('the row of u on the target', async () => (await count(b!, 'public.u')) === 1);
    expect(await listenerState(a!)).toBe('LISTEN "pgferry"');
    expect(await count(b!)).toBe(0);
    await lock.release();
    await booked;
    await waitFor('rows of t on the target', async () => (await count(b!)) === 2);
    await expectEqual(a!, b!, 'public.u');
    await expectEqual(a!, b!);
  });
});

describe('always on: kicks', () => {
  it('a kick during a run in flight joins it and runs once more; every kick resolves', async () => {
    const { a, b, rep } = await pairWithT({ autokick: false });
    const ev = record(rep);
    await a!.sql(`INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 20000) g`);

    // Two kicks at once: the first starts a run, the second joins and books one more run.
    const k1 = rep.kick('s');
    const k2 = rep.kick('s');
    expect(rep.status().syncs[0]!.running).toBe(true);
    // A change committed while the first run is in flight: the second kick must cover it.
    await a!.sql(`INSERT INTO t VALUES (-1, 'late')`);
    const [r1, r2] = await Promise.all([k1, k2]);
    expect(r1.sync).toBe('s');
    expect(r2.sync).toBe('s');
    expect(r1.runId).not.toBe(r2.runId);
    expect(ev.starts).toHaveLength(2);
    expect(ev.runLog).toEqual(['start:kick', 'complete:ok', 'start:kick', expect.stringMatching(/^complete:/)]);
    expect(await b!.sql(`SELECT v FROM t WHERE id = -1`)).toEqual([{ v: 'late' }]);
    await expectEqual(a!, b!);

    // Three kicks at once: one run, and the two that joined share the one run after it.
    ev.starts.length = 0;
    await a!.sql(`UPDATE t SET v = 'again ' || id WHERE id <= 5000`);
    const [s1, s2, s3] = await Promise.all([rep.kick('s'), rep.kick('s'), rep.kick('s')]);
    expect(ev.starts).toHaveLength(2);
    expect(s1.runId).not.toBe(s2.runId);
    expect(s2.runId).toBe(s3.runId);
    expect(s1.status).toBe('ok');
    await expectEqual(a!, b!);
  });

  it("kick('s', { timeoutMs: 1 }) on a long run rejects KICK_TIMEOUT, and the run still completes", async () => {
    const { a, b, rep } = await pairWithT({ autokick: false });
    const ev = record(rep);
    await a!.sql(`INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 50000) g`);
    const completed = ev.next('sync:complete');

    const err = await rep.kick('s', { timeoutMs: 1 }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err, 'the kick should have timed out').toBeInstanceOf(PgferryError);
    expect(isPgferryError(err) && err.code).toBe('KICK_TIMEOUT');

    // The run goes on and commits.
    const result = await within(completed, 20_000);
    expect(result, 'the run went on and completed').not.toBeNull();
    expect(result!.status).toBe('ok');
    expect(result!.totals.upserted).toBe(50000);
    expect(ev.errors).toEqual([]);
    expect(await count(b!)).toBe(50000);
    await expectEqual(a!, b!);
  });
});

describe('always on: background failures', () => {
  it('a serialization failure on the target is retried in the background until the run succeeds', async () => {
    const [a, b] = await createDatabases(2);
    await sqlAll([a!, b!], DDL);
    // The target fails the first two row writes with SQLSTATE 40001 (nextval is not rolled back).
    await b!.sql(`CREATE SEQUENCE fail_seq`);
    await b!.sql(`
      CREATE FUNCTION inject_40001() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF nextval('fail_seq') <= 2 THEN
          RAISE EXCEPTION 'injected serialization failure' USING ERRCODE = '40001';
        END IF;
        RETURN NEW;
      END $$`);
    await b!.sql(`CREATE TRIGGER inject BEFORE INSERT OR UPDATE ON public.t FOR EACH ROW EXECUTE FUNCTION inject_40001()`);

    const rep = await setup(a!, b!);
    const ev = record(rep);
    await rep.start();
    await a!.sql(`INSERT INTO t VALUES (1, 'eventually')`);

    await waitFor('row 1 on the target after retries', async () => (await count(b!)) === 1, { timeoutMs: 10_000 }).catch((e: Error) => {
      throw new Error(`${e.message}; events: ${ev.runLog.join(', ')}; errors: ${ev.errors.map((x) => describeError(x.error)).join(' | ')}`);
    });
    await waitFor('sync:complete after the failures', () => ev.runLog.lastIndexOf('complete:ok') > ev.runLog.findIndex((o) => o.startsWith('error:')), { timeoutMs: 5_000 });

    expect(ev.errors.length, ev.runLog.join(', ')).toBeGreaterThanOrEqual(1);
    for (const e of ev.errors) {
      expect(e.sync).toBe('s');
      expect(e.willRetry, `sync:error ${describeError(e.error)} should be retried`).toBe(true);
      expect(isPgferryError(e.error)).toBe(true);
    }
    expect(ev.fatal).toEqual([]);
    expect(ev.starts.some((s) => s.reason === 'retry')).toBe(true);
    expect(Number((await b!.sql(`SELECT last_value FROM fail_seq`))[0]!.last_value)).toBeGreaterThanOrEqual(3);
    await expectEqual(a!, b!);
  });

  it('a non-retryable error (SCHEMA_MISMATCH) is reported once, parks the sync until the next kick', async () => {
    const [a, b] = await createDatabases(2);
    await a!.sql(`CREATE TABLE public.t (id int PRIMARY KEY, v text, extra int)`);
    await b!.sql(`CREATE TABLE public.t (id int PRIMARY KEY, v text)`); // no column "extra"

    // A short periodic check: it must not wake a parked sync either.
    const rep = await setup(a!, b!, { checkIntervalMs: 150, retry: { minDelayMs: 50, maxDelayMs: 200 } });
    const ev = record(rep);
    await rep.start();
    await waitFor('the catch-up run of start()', () => ev.completes.length > 0, { timeoutMs: 5_000 });
    // A backlog large enough that the failing run lasts longer than the check interval, so
    // background requests (check, autokick) arrive while it is in flight.
    await a!.sql(`INSERT INTO t SELECT g, 'v' || g, g FROM generate_series(1, 20000) g`);
    await waitFor('a sync:error', () => ev.errors.length > 0, { timeoutMs: 5_000 });
    await waitFor('the error event', () => ev.fatal.length > 0, { timeoutMs: 2_000 });

    const first = ev.errors[0]!;
    expect(first.sync).toBe('s');
    expect(first.willRetry).toBe(false);
    expect(isPgferryError(first.error)).toBe(true);
    expect(first.error.code).toBe('SCHEMA_MISMATCH');
    expect(first.error.message).toContain('extra');
    expect(ev.fatal[0]).toBeInstanceOf(PgferryError);
    expect(ev.fatal[0]!.code).toBe('SCHEMA_MISMATCH');

    // No automatic run after the failure: not by backoff, the periodic check, requests booked
    // while the failing run was in flight, or new commits (autokick).
    await a!.sql(`INSERT INTO t VALUES (-2, 'two', 2)`);
    await sleep(1_000);
    const afterFailure = ev.runLog.slice(ev.runLog.indexOf('error:SCHEMA_MISMATCH:false') + 1);
    expect(afterFailure, `events: ${ev.runLog.join(', ')}`).toEqual(['fatal:SCHEMA_MISMATCH']);
    expect(ev.errors).toHaveLength(1);
    expect(ev.fatal).toHaveLength(1);
    expect(await count(b!)).toBe(0);
    expect(rep.status().syncs[0]!.lastError?.code).toBe('SCHEMA_MISMATCH');

    // Fixed by hand; the next kick runs (and un-parks the sync).
    await b!.sql(`ALTER TABLE public.t ADD COLUMN extra int`);
    const r = await rep.kick('s');
    expect(r.status).toBe('ok');
    await expectEqual(a!, b!);
    // Background replication is back.
    await a!.sql(`INSERT INTO t VALUES (-3, 'three', 3)`);
    await waitFor('row -3 by autokick after the kick', async () => (await count(b!)) === 20002, { timeoutMs: 5_000 });
    await expectEqual(a!, b!);
  });
});

describe('always on: large backlogs and delta tables', () => {
  it('a 200k-change backlog applies in several chunks, with rows:applied per chunk', async () => {
    const { a, b, rep } = await pairWithT({ autokick: false, chunkSize: 50_000 });
    const ev = record(rep);
    const N = 200_000;
    await a!.sql(`INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, ${N}) g`);

    const r = await rep.kick('s');
    expect(r.status).toBe('ok');
    expect(r.chunks).toBeGreaterThanOrEqual(4);
    expect(r.totals.upserted).toBe(N);
    expect(r.tables[T]).toMatchObject({ upserted: N, deleted: 0 });
    await expectEqual(a!, b!);
    expect(await count(b!)).toBe(N);

    // One rows:applied per chunk (one table, one target), each at most chunkSize keys.
    expect(ev.applied.length).toBeGreaterThanOrEqual(4);
    expect(ev.applied.length).toBe(r.chunks);
    for (const e of ev.applied) {
      expect(e).toMatchObject({ sync: 's', target: 'b', table: T });
      expect(e.upserted.length).toBeGreaterThan(0);
      expect(e.upserted.length).toBeLessThanOrEqual(50_000);
    }
    const keys = new Set(ev.applied.flatMap((e) => e.upserted.map((k) => k.id as number)));
    expect(keys.size).toBe(N);

    const again = await rep.kick('s');
    expect(again.status).toBe('empty');
  });

  it('a backlog in more chunks than the pool has connections completes', async () => {
    // 12 chunks; a database's pool holds 10 connections by default.
    const { a, b, rep } = await pairWithT({ autokick: false, chunkSize: 2_000 });
    const ev = record(rep);
    await a!.sql(`INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 24000) g`);
    const r = await rep.kick('s', { timeoutMs: 15_000 }).catch(async (e: unknown) => {
      throw new Error(
        `${describeError(e)}; chunks applied so far: ${ev.applied.length}; pgferry connections open to the target: ${await pgferryConnections(b!)}`,
        { cause: e },
      );
    });
    expect(r.status).toBe('ok');
    expect(r.chunks).toBe(12);
    expect(ev.applied).toHaveLength(12);
    await expectEqual(a!, b!);
    // The run gave its connections back: the next runs do not wait for one either.
    await a!.sql(`UPDATE t SET v = 'again' WHERE id <= 24000`);
    const r2 = await rep.kick('s', { timeoutMs: 15_000 });
    expect(r2.chunks).toBe(12);
    await expectEqual(a!, b!);
  });

  it('after runs with no new writes, the delta tables are empty', async () => {
    const [a, b] = await createDatabases(2);
    await sqlAll([a!, b!], `${DDL}; CREATE TABLE public.u (k text PRIMARY KEY, n int)`);
    const rep = await replicators.installed([a!, b!], { tables: ['t', 'u'] }, FAST);

    await a!.sql(`INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 500) g`);
    await a!.sql(`INSERT INTO u SELECT 'k' || g, g FROM generate_series(1, 100) g`);
    for (let i = 1; i <= 20; i++) await a!.sql(`UPDATE t SET v = 'x' WHERE id = $1`, [i]);
    await a!.sql(`DELETE FROM u WHERE n > 50`);
    await a!.sql(`UPDATE t SET id = id + 1000 WHERE id <= 10`);

    const deltaTables = (await a!.sql<{ delta_table: string }>(`SELECT delta_table FROM pgferry.captured ORDER BY 1`)).map((r) => r.delta_table);
    expect(deltaTables).toHaveLength(2);
    const deltaCounts = async () => {
      const out: Record<string, number> = {};
      for (const d of deltaTables) {
        const r = await a!.sql<{ n: string }>(`SELECT count(*)::text AS n FROM pgferry."${d.replace(/"/g, '""')}"`);
        out[d] = Number(r[0]!.n);
      }
      return out;
    };
    const before = await deltaCounts();
    expect(Object.values(before).every((n) => n > 0)).toBe(true);

    const r = await rep.kick('s');
    expect(r.status).toBe('ok');
    await rep.kick('s');
    await expectEqual(a!, b!, 'public.t');
    await expectEqual(a!, b!, 'public.u');
    expect(await deltaCounts()).toEqual(Object.fromEntries(deltaTables.map((d) => [d, 0])));
  });

  it('delta tables are emptied even while an unrelated transaction is open on the same server', async () => {
    // Three databases: c is on the same server as a (databases go round-robin over the servers).
    const [a, b, c] = await createDatabases(3);
    expect(c!.serverUrl).toBe(a!.serverUrl);
    await sqlAll([a!, b!], DDL);
    const rep = await setup(a!, b!, FAST, { autokick: false });
    // Another application's long transaction in another database of the server.
    const other = await connect(c!);
    await other.query(`BEGIN`);
    await other.query(`SELECT pg_current_xact_id()`);

    await a!.sql(`INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 300) g`);
    await a!.sql(`UPDATE t SET v = 'x' WHERE id <= 30`);
    await a!.sql(`DELETE FROM t WHERE id > 290`);
    expect((await rep.kick('s')).status).toBe('ok');
    expect((await rep.kick('s')).status).toBe('empty');
    await expectEqual(a!, b!);
    const [{ delta_table }] = (await a!.sql<{ delta_table: string }>(`SELECT delta_table FROM pgferry.captured`)) as [{ delta_table: string }];
    const left = await a!.sql<{ n: string }>(`SELECT count(*)::text AS n FROM pgferry."${delta_table.replace(/"/g, '""')}"`);
    // Every delta is visible in the watermark (delivered): none is needed any more.
    expect(Number(left[0]!.n), 'deltas left after two runs').toBe(0);
    await other.query(`ROLLBACK`);
  });
});

describe('always on: start and stop', () => {
  it('stop() while a run is still connecting: the new connection is closed, not left waiting for the run lock', async () => {
    const [a, b] = await createDatabases(2);
    await sqlAll([a!, b!], DDL);
    await (await setup(a!, b!)).stop();
    // The run lock held elsewhere: a run that got its connection would wait for it forever.
    const holder = await connect(a!);
    await holder.query(`SELECT pg_catalog.pg_advisory_lock(${lockArgs(1)})`, lockValues(runLock('pgferry', 's')));
    const gate = await heldProxy(a!.url);
    try {
      const rep = replicators.create(FAST);
      await rep.addDatabase('a', gate.url);
      await rep.addDatabase('b', b!.url);
      await rep.addSync('s', { tables: [T], databases: { a: 'source', b: 'target' }, autokick: false });
      const kicked = rep.kick('s').then(
        () => null,
        (e: PgferryError) => e,
      );
      await waitFor('the run connecting', async () => gate.waiting() > 0);
      const stopping = rep.stop({ timeoutMs: 0 });
      gate.release();
      expect(await within(stopping, 5_000), 'stop() resolved').toBeUndefined();
      expect((await kicked)?.code).toBe('STOPPED');
      await waitFor('no pgferry connection to the source', async () => (await pgferryConnections(a!)) === 0, { timeoutMs: 3_000 });
    } finally {
      gate.close();
      await holder.end();
    }
  });

  it('start/stop twice and concurrently is safe, and stop() closes every connection', async () => {
    const { a, b, rep } = await pairWithT();

    await Promise.all([rep.start(), rep.start()]);
    await rep.start();
    expect(rep.status().started).toBe(true);
    await a!.sql(`INSERT INTO t VALUES (1, 'one')`);
    await waitFor('row 1', async () => (await count(b!)) === 1);

    await Promise.all([rep.stop(), rep.stop()]);
    await rep.stop();
    expect(rep.status().started).toBe(false);
    await waitFor('no pgferry connection to the source', async () => (await pgferryConnections(a!)) === 0, { timeoutMs: 3_000 });
    await waitFor('no pgferry connection to the target', async () => (await pgferryConnections(b!)) === 0, { timeoutMs: 3_000 });

    // Stopped: commits are not replicated.
    const ev = record(rep);
    await a!.sql(`INSERT INTO t VALUES (2, 'two')`);
    await sleep(300);
    expect(ev.starts).toEqual([]);
    expect(await count(b!)).toBe(1);

    // Started again: the commit made while stopped is caught up, and autokick works again.
    await rep.start();
    await waitFor('row 2 after the restart', async () => (await count(b!)) === 2);
    await a!.sql(`INSERT INTO t VALUES (3, 'three')`);
    await waitFor('row 3 by autokick', async () => (await count(b!)) === 3);
    await expectEqual(a!, b!);

    // start and stop racing each other end stopped, with nothing open.
    await Promise.all([rep.stop(), rep.start().then(() => rep.stop())]);
    await rep.stop();
    expect(rep.status().started).toBe(false);
    await waitFor('no pgferry connection after the race', async () => (await pgferryConnections(a!)) + (await pgferryConnections(b!)) === 0, { timeoutMs: 3_000 });
  });

  it('await using stops the replicator at the end of the block', async () => {
    const [a, b] = await createDatabases(2);
    await sqlAll([a!, b!], DDL);
    let seen: Replicator;
    {
      await using rep = new Replicator(FAST);
      seen = rep;
      await rep.addDatabase('a', a!.url);
      await rep.addDatabase('b', b!.url);
      await rep.addSync('s', { tables: [T], databases: { a: 'source', b: 'target' } });
      await rep.install();
      await rep.start();
      await a!.sql(`INSERT INTO t VALUES (1, 'one')`);
      await waitFor('row 1', async () => (await count(b!)) === 1);
      expect(await pgferryConnections(a!)).toBeGreaterThan(0); // at least the LISTEN connection
    }
    expect(seen.status().started).toBe(false);
    await waitFor('no pgferry connection after dispose', async () => (await pgferryConnections(a!)) + (await pgferryConnections(b!)) === 0, { timeoutMs: 3_000 });
    const ev = record(seen);
    await a!.sql(`INSERT INTO t VALUES (2, 'two')`);
    await sleep(300);
    expect(ev.starts).toEqual([]);
    expect(typeof seen[Symbol.asyncDispose]).toBe('function');
  });

  it('a process that start()s, replicates and stop()s exits by itself (no open handles)', async () => {
    const [a, b] = await createDatabases(2);
    await sqlAll([a!, b!], DDL);
    const child = spawn('npx', ['tsx', path.join('test', 'fixtures', 'stop-exits.ts')], {
      cwd: ROOT,
      env: { ...process.env, PGFERRY_A_URL: a!.url, PGFERRY_B_URL: b!.url },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // own process group, so a hung child can be killed with everything it spawned
    });
    let out = '';
    let err = '';
    let stoppedAt = 0;
    child.stdout.on('data', (d: Buffer) => {
      out += String(d);
      if (!stoppedAt && out.includes('STOPPED')) stoppedAt = Date.now();
    });
    child.stderr.on('data', (d: Buffer) => { err += String(d); });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('exit', (code, signal) => resolve({ code, signal })),
    );
    try {
      await waitFor('the child to print STOPPED', () => stoppedAt > 0 || child.exitCode !== null, { timeoutMs: 25_000, everyMs: 50 }).catch((e: Error) => {
        throw new Error(`${e.message}\nstdout:\n${out}\nstderr:\n${err}`);
      });
      const result = await within(exited, 5_000);
      expect(result, `the child did not exit within 5 s of stop()\nstdout:\n${out}\nstderr:\n${err}`).not.toBeNull();
      expect(out).toContain('REPLICATED');
      expect(out).not.toContain('NOT REPLICATED');
      expect(result, `stdout:\n${out}\nstderr:\n${err}`).toEqual({ code: 0, signal: null });
      expect(Date.now() - stoppedAt).toBeLessThan(5_000);
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
    }
    expect(await b!.sql(`SELECT v FROM t`)).toEqual([{ v: 'from the child' }]);
  });
});
