/**
 * metrics() while a source server is down: the sources that answer are reported, the one that
 * does not has a null backlog and its error, and the call does not wait past the connection
 * timeout.
 */
import { expect, it, onTestFinished } from 'vitest';
import { createDatabases, sqlAt } from './helpers/db.js';
import { kick, stopReplicatorsAfterEach } from './helpers/replicators.js';
import { withDatabase } from '../tools/pg-servers.js';
import { startRestartableServer } from './fixtures/restartable-pg.js';

const replicators = stopReplicatorsAfterEach();
const DDL = 'CREATE TABLE t (id int PRIMARY KEY, v text)';

it('a source server that stops: its backlog is null with the error, the other source is still read; both again once it is back', async () => {
  const server = await startRestartableServer();
  onTestFinished(() => server.destroy());
  const [a] = await createDatabases(1);
  await a!.sql(DDL);
  await sqlAt(server.url, 'CREATE DATABASE b');
  const bUrl = withDatabase(server.url, 'b');
  await sqlAt(bUrl, DDL);
  const rep = await replicators.installed([a!, { url: bUrl }], { tables: ['t'], databases: { a: 'source', b: 'source' } }, { connectionTimeoutMs: 2_000 });
  await kick(rep);
  await a!.sql(`INSERT INTO t VALUES (1, 'a'), (2, 'a')`);
  await sqlAt(bUrl, `INSERT INTO t VALUES (3, 'b')`);
  expect((await rep.metrics()).syncs['s']).toMatchObject({ backlog: { a: 2, b: 1 }, errors: {} });

  await server.stop();
  const t0 = Date.now();
  const m = (await rep.metrics()).syncs['s']!;
  expect(Date.now() - t0).toBeLessThan(2_500);
  expect(m.backlog).toEqual({ a: 2, b: null });
  expect(Object.keys(m.errors)).toEqual(['b']);
  expect(m.errors['b']).toMatch(/^CONNECTION_FAILED: Cannot connect to database "b" \(127\.0\.0\.1:\d+\/b\): /);
  expect(m.errors['b']).not.toContain('pgferry-test'); // no password
  expect(m.lagMs).toBeGreaterThanOrEqual(0);
  expect(m).toMatchObject({ runs: 1, failedRuns: 0 });

  await server.start();
  expect((await rep.metrics()).syncs['s']).toMatchObject({ backlog: { a: 2, b: 1 }, errors: {} });
});
