/**
 * Foreign keys between replicated tables hold on every receiver whatever the chunking and the
 * mix of operations (issue 11, item 5): a child re-parented and its old parent deleted in one
 * transaction, TRUNCATE of parent and child, a full copy into a target whose child table
 * holds rows, a backlog whose chunks would bring a child before its new parent, and a parent
 * row replaced by another with the same unique value.
 */
import { describe, expect, it } from 'vitest';
import { createDatabases, sqlAll, tableContents, type TestDb } from './helpers/db.js';
import { kick, stopReplicatorsAfterEach } from './helpers/replicators.js';

const replicators = stopReplicatorsAfterEach();

const DDL = `
  CREATE TABLE p (id int PRIMARY KEY, name text NOT NULL UNIQUE);
  CREATE TABLE c (id int PRIMARY KEY, p_id int NOT NULL REFERENCES p (id), v text);
`;

async function expectEqual(dbs: TestDb[]): Promise<void> {
  for (const t of ['p', 'c']) {
    const want = await tableContents(dbs[0]!, t);
    for (const db of dbs.slice(1)) expect(await tableContents(db, t), `${t} on ${db.name}`).toEqual(want);
  }
}

describe('foreign keys', () => {
  it('a child re-parented and its old parent deleted in one transaction', async () => {
    const dbs = await createDatabases(2);
    await sqlAll(dbs, `${DDL}; INSERT INTO p VALUES (1, 'one'); INSERT INTO c VALUES (10, 1, 'x')`);
    // The child table is listed first: the order of `tables` does not matter.
    const rep = await replicators.installed(dbs, { tables: ['c', 'p'] });
    await dbs[0]!.sql(`BEGIN; INSERT INTO p VALUES (2, 'two'); UPDATE c SET p_id = 2 WHERE id = 10; DELETE FROM p WHERE id = 1; COMMIT`);
    const r = await kick(rep);
    expect(r.tables).toMatchObject({ 'public.p': { upserted: 1, deleted: 1 }, 'public.c': { upserted: 1, deleted: 0 } });
    await expectEqual(dbs);
    expect(await tableContents(dbs[1]!, 'c')).toEqual(['(10,2,x)']);
  });

  it('TRUNCATE of parent and child', async () => {
    const dbs = await createDatabases(2);
    await sqlAll(dbs, `${DDL}; INSERT INTO p SELECT g, 'p' || g FROM generate_series(1, 5) g; INSERT INTO c SELECT g, 1 + g % 5, 'c' FROM generate_series(1, 20) g`);
    const rep = await replicators.installed(dbs, { tables: ['p', 'c'] });
    await dbs[0]!.sql(`TRUNCATE p, c`);
    await dbs[0]!.sql(`INSERT INTO p VALUES (7, 'seven'); INSERT INTO c VALUES (70, 7, 'after')`);
    await kick(rep);
    await expectEqual(dbs);
    expect(await tableContents(dbs[1]!, 'c')).toEqual(['(70,7,after)']);
  });

  it('a full copy into a database whose child table holds rows', async () => {
    const dbs = await createDatabases(2);
    await sqlAll(dbs, DDL);
    await dbs[0]!.sql(`INSERT INTO p SELECT g, 'p' || g FROM generate_series(1, 10) g; INSERT INTO c SELECT g, 1 + g % 10, 'src' FROM generate_series(1, 30) g`);
    await dbs[1]!.sql(`INSERT INTO p VALUES (1, 'old'), (50, 'only here'); INSERT INTO c VALUES (1, 50, 'old child'), (2, 1, 'old child')`);
    const rep = await replicators.installed(dbs, { tables: ['p', 'c'], databases: { a: 'source', b: 'fullcopy' } });
    await kick(rep);
    await expectEqual(dbs);
    // And with onetimecopy into a target holding rows.
    const more = await createDatabases(2);
    await sqlAll(more, DDL);
    await more[0]!.sql(`INSERT INTO p SELECT g, 'p' || g FROM generate_series(1, 10) g; INSERT INTO c SELECT g, 1 + g % 10, 'src' FROM generate_series(1, 30) g`);
    await more[1]!.sql(`INSERT INTO p VALUES (1, 'old'), (50, 'only here'); INSERT INTO c VALUES (1, 50, 'old child'), (2, 1, 'old child')`);
    const rep2 = await replicators.installed(more, { tables: ['p', 'c'], onetimecopy: 'always' });
    await kick(rep2);
    await expectEqual(more);
  });

  it('a backlog in chunks of 50 where child i moves to parent 1001 - i', async () => {
    const dbs = await createDatabases(2);
    await sqlAll(dbs, `${DDL}; INSERT INTO p SELECT g, 'p' || g FROM generate_series(1, 500) g; INSERT INTO c SELECT g, g, 'c' FROM generate_series(1, 500) g`);
    const rep = await replicators.installed(dbs, { tables: ['p', 'c'], chunkSize: 50 });
    // New parents 501..1000; every child moves to parent 1001 - i; the old parents go.
    await dbs[0]!.sql(`BEGIN;
      INSERT INTO p SELECT g, 'p' || g FROM generate_series(501, 1000) g;
      UPDATE c SET p_id = 1001 - id;
      DELETE FROM p WHERE id <= 500;
      COMMIT`);
    const r = await kick(rep);
    expect(r.chunks).toBeGreaterThan(10);
    expect(r.tables).toMatchObject({ 'public.p': { upserted: 500, deleted: 500 }, 'public.c': { upserted: 500, deleted: 0 } });
    await expectEqual(dbs);
    // And the other way round: children deleted, then their parents.
    await dbs[0]!.sql(`BEGIN; DELETE FROM c WHERE id > 100; DELETE FROM p WHERE id NOT IN (SELECT p_id FROM c); COMMIT`);
    await kick(rep);
    await expectEqual(dbs);
    expect(await tableContents(dbs[1]!, 'p')).toHaveLength(100);
  });

  it('a parent row replaced by another with the same unique name, beside children that move', async () => {
    const dbs = await createDatabases(2);
    await sqlAll(dbs, `${DDL}; INSERT INTO p VALUES (1, 'acme'), (2, 'other'); INSERT INTO c VALUES (10, 2, 'x')`);
    const rep = await replicators.installed(dbs, { tables: ['p', 'c'] });
    // Row 1 (nothing references it) gives its name to row 3; child 10 moves from 2 to 4 and 2 goes.
    await dbs[0]!.sql(`BEGIN; DELETE FROM p WHERE id = 1; INSERT INTO p VALUES (3, 'acme'), (4, 'fresh'); UPDATE c SET p_id = 4; DELETE FROM p WHERE id = 2; COMMIT`);
    await kick(rep);
    await expectEqual(dbs);
    expect(await tableContents(dbs[1]!, 'p')).toEqual(['(3,acme)', '(4,fresh)']);
  });
});
