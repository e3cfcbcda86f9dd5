/**
 * Outages and crashes: a target server that goes away while writes go on is caught up by the
 * background retries once it is back (no manual step), and a replicator process killed in the
 * middle of a run leaves nothing that a fresh replicator cannot finish.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import pg from 'pg';
import type { SyncErrorEvent } from '../src/index.js';
import { count, createDatabases, sqlAll, sqlAt, tableChecksum, type TestDb } from './helpers/db.js';
import { describeError } from './helpers/errors.js';
import { record } from './helpers/events.js';
import { stopReplicatorsAfterEach } from './helpers/replicators.js';
import { sleep, waitFor } from './helpers/wait.js';
import { withDatabase } from '../tools/pg-servers.js';
import { startRestartableServer } from './fixtures/restartable-pg.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// Runs before the databases are dropped and the dedicated server destroyed (onTestFinished).
const replicators = stopReplicatorsAfterEach();

/** What every other session on a database is doing (for failure messages). */
async function activity(db: TestDb): Promise<string[]> {
  const rows = await db.sql<{ line: string }>(
    `SELECT format('%s pid=%s app=%s state=%s wait=%s/%s xid=%s age=%s query=%s', datname, pid, application_name, state,
                   wait_event_type, wait_event, backend_xid, now() - xact_start, left(query, 120)) AS line
       FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`,
    [db.name],
  );
  return rows.map((r) => r.line);
}

const DDL = `CREATE TABLE public.t (id int PRIMARY KEY, v text, n int)`;
const T = 'public.t';
/** Small backoff so background retries happen within a test. */
const RETRY_FAST = { checkIntervalMs: 60_000, retry: { minDelayMs: 50, maxDelayMs: 300 } };

/**
 * A source database `a` on the shared servers and a target database (its connection string
 * `bUrl`) on a server of its own that the test can stop and start; public.t in both.
 */
async function sourceAndStoppableTarget() {
  const server = await startRestartableServer();
  onTestFinished(() => server.destroy());
  const [a] = await createDatabases(1);
  await a!.sql(DDL);
  await sqlAt(server.url, `CREATE DATABASE target`);
  const bUrl = withDatabase(server.url, 'target');
  await sqlAt(bUrl, DDL);
  return { server, a: a!, bUrl };
}

/** Whether the target holds exactly the rows of public.t that the source holds. */
async function caughtUp(a: TestDb, bUrl: string): Promise<boolean> {
  const [x, y] = await Promise.all([tableChecksum(a, T), tableChecksum(bUrl, T)]);
  return x.count === y.count && x.md5 === y.md5;
}

/** The last three sync:error events, for a failure message. */
function lastErrors(errors: SyncErrorEvent[]): string {
  return errors.map((x) => `${describeError(x.error)} (willRetry ${x.willRetry})`).slice(-3).join(' | ');
}

describe('outage', () => {
  it('a target server that stops while writes go on is caught up after it restarts, with no kick', async () => {
    const { server, a, bUrl } = await sourceAndStoppableTarget();

    const rep = await replicators.installed([a!, { url: bUrl }], { tables: [T], autokick: true }, RETRY_FAST);
    const { starts, errors, completes, fatal } = record(rep, ['sync:start', 'sync:error', 'sync:complete', 'error']);
    await rep.start();

    // A writer on the source: single-row commits (inserts and some updates) until told to stop.
    let writing = true;
    let written = 0;
    const writer = (async () => {
      const c = new pg.Client({ connectionString: a!.url });
      c.on('error', () => {});
      await c.connect();
      try {
        while (writing) {
          written++;
          await c.query(`INSERT INTO t VALUES ($1, $2, 0)`, [written, `row ${written}`]);
          if (written % 7 === 0) await c.query(`UPDATE t SET n = n + 1 WHERE id = $1`, [written - 3]);
          if (written % 11 === 0) await c.query(`DELETE FROM t WHERE id = $1`, [written - 5]);
          await sleep(5);
        }
      } finally {
        await c.end();
      }
    })();

    try {
      await waitFor('rows arriving before the outage', async () => (await count(bUrl)) > 20, { timeoutMs: 5_000, everyMs: 50 });
      const errorsBefore = errors.length;

      await server.stop();
      const writtenAtStop = written;
      await sleep(2_000);
      expect(written - writtenAtStop, 'writes go on during the outage').toBeGreaterThan(20);
      // Runs during the outage failed and will be retried.
      expect(errors.length, 'runs failed during the outage').toBeGreaterThan(errorsBefore);
      for (const e of errors) expect(e.willRetry, `sync:error during the outage: ${describeError(e.error)}`).toBe(true);
    } finally {
      // Writes stop before the server is back: from here on, nothing but the scheduler's own
      // retries can bring the last changes over (no commit will notify any more).
      writing = false;
      await writer;
    }
    const startsBeforeRestart = starts.length;
    await server.start();
    const total = await count(a!);
    await waitFor('the target to catch up after the outage', () => caughtUp(a!, bUrl), { timeoutMs: 15_000, everyMs: 100 }).catch((e: Error) => {
      throw new Error(`${e.message}; source rows ${total}; errors: ${lastErrors(errors)}`);
    });
    expect(await tableChecksum(bUrl, T)).toEqual(await tableChecksum(a!, T));
    expect(fatal).toEqual([]);
    expect(errors.every((e) => e.willRetry)).toBe(true);
    expect(errors.some((e) => e.error.code === 'CONNECTION_FAILED')).toBe(true);
    expect(starts.every((s) => s.reason !== 'kick')).toBe(true);
    // What brought the last changes over after the restart was a background retry.
    expect(starts.slice(startsBeforeRestart).some((s) => s.reason === 'retry')).toBe(true);
    expect(completes.length).toBeGreaterThan(0);
  });
});

describe('outage in the middle of a run', () => {
  it('a target server that stops while a run writes to it: the run fails with willRetry, nothing crashes, and it catches up', async () => {
    const { server, a, bUrl } = await sourceAndStoppableTarget();

    // A connection that drops under a run must reach the run as an error, never as an
    // uncaught exception in the host process.
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown) => uncaught.push(e);
    process.on('uncaughtException', onUncaught);
    onTestFinished(() => { process.off('uncaughtException', onUncaught); });

    const rep = await replicators.installed([a!, { url: bUrl }], { tables: [T], autokick: true, chunkSize: 50_000 }, RETRY_FAST);
    const { errors, fatal } = record(rep, ['sync:error', 'error']);
    await a!.sql(`INSERT INTO t SELECT g, md5(g::text), g FROM generate_series(1, 100000) g`);
    await rep.start(); // the catch-up run starts on the backlog

    // Wait until the run writes on the target (a pgferry session there holds a transaction id).
    await waitFor(
      'the run to write on the target',
      async () =>
        (await sqlAt<{ n: string }>(
          server.url,
          `SELECT count(*)::text AS n FROM pg_stat_activity WHERE datname = 'target' AND application_name = 'pgferry' AND backend_xid IS NOT NULL`,
        ))[0]!.n !== '0',
      { timeoutMs: 15_000, everyMs: 5 },
    );
    await server.stop();
    await waitFor('the run to fail', () => errors.length > 0, { timeoutMs: 10_000, everyMs: 50 });
    expect(errors[0]!.willRetry, describeError(errors[0]!.error)).toBe(true);
    await sleep(500);
    await server.start();

    await waitFor('the target to catch up', () => caughtUp(a!, bUrl), { timeoutMs: 20_000, everyMs: 100 }).catch((e: Error) => {
      throw new Error(`${e.message}; errors: ${lastErrors(errors)}`);
    });
    expect(errors.every((e) => e.willRetry)).toBe(true);
    expect(fatal).toEqual([]);
    expect(uncaught.map((e) => String(e))).toEqual([]);
  });
});

describe('crash', () => {
  it('a replicator process killed in the middle of a run: a fresh replicator finishes the job', async () => {
    const [a, b] = await createDatabases(2);
    await sqlAll([a!, b!], DDL);
    // Some rows on both sides first, so the backlog has updates and deletes as well as inserts.
    const first = await replicators.installed([a!, b!], { tables: [T], chunkSize: 20_000 });
    await a!.sql(`INSERT INTO t SELECT g, 'old ' || g, 0 FROM generate_series(1, 20000) g`);
    expect((await first.kick('s')).status).toBe('ok');
    await first.stop();

    // The backlog: 300k changed rows.
    await a!.sql(`INSERT INTO t SELECT g, md5(g::text), g FROM generate_series(20001, 300000) g`);
    await a!.sql(`UPDATE t SET v = 'new ' || id, n = -1 WHERE id <= 15000`);
    await a!.sql(`DELETE FROM t WHERE id > 15000 AND id <= 20000`);
    const want = await tableChecksum(a!, T);

    const child = spawn('npx', ['tsx', path.join('test', 'fixtures', 'crash-run.ts')], {
      cwd: ROOT,
      env: { ...process.env, PGFERRY_A_URL: a!.url, PGFERRY_B_URL: b!.url, PGFERRY_CHUNK_SIZE: '20000' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // own process group: SIGKILL reaches npx, tsx and the script at once
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += String(d); });
    child.stderr.on('data', (d: Buffer) => { err += String(d); });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('exit', (code, signal) => resolve({ code, signal })),
    );
    const kill = () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    };
    onTestFinished(kill);

    await waitFor('the child to apply its first chunk', () => out.includes('APPLIED') || child.exitCode !== null, { timeoutMs: 25_000, everyMs: 10 }).catch((e: Error) => {
      throw new Error(`${e.message}\nstdout:\n${out}\nstderr:\n${err}`);
    });
    kill();
    const how = await exited;
    expect(out, `the run finished before the kill; stdout:\n${out}\nstderr:\n${err}`).not.toContain('DONE');
    expect(how.signal ?? how.code).not.toBe(0);

    // Killed mid-run: some chunks committed on the target, not all.
    await sleep(200);
    const partial = await count(b!);
    expect(partial).toBeGreaterThan(0);
    expect(partial).not.toBe(want.count);

    // A fresh replicator in this process picks up from the last committed watermark.
    const rep = await replicators.installed([a!, b!], { tables: [T], chunkSize: 20_000 });
    const r = await rep.kick('s', { timeoutMs: 25_000 }).catch(async (e: unknown) => {
      throw new Error(`${describeError(e)}\nchild stdout:\n${out}\nsessions:\n${(await activity(a!)).join('\n')}\n${(await activity(b!)).join('\n')}`, { cause: e });
    });
    expect(r.status).toBe('ok');
    expect(await tableChecksum(b!, T)).toEqual(want);
    const again = await rep.kick('s');
    expect(again.status).toBe('empty');
    expect(await tableChecksum(b!, T)).toEqual(want);
  });
});
