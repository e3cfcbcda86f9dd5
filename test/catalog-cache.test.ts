/**
 * Table descriptions are cached between runs (src/catalog/cache.ts). DDL made on both sides
 * between two runs, with no failed run in between, must be seen by the next run: the new
 * shape travels, nothing is copied by the old one.
 */
import { describe, expect, it } from 'vitest';
import type { PgferryError } from '../src/index.js';
import { createDatabases, sqlAll, tableContents, type TestDb } from './helpers/db.js';
import { kick, stopReplicatorsAfterEach } from './helpers/replicators.js';

const replicators = stopReplicatorsAfterEach();

interface Case {
  name: string;
  /** DDL run on both databases between the runs. */
  ddl: string;
  /** A change on the source after it. */
  write: string;
}

const CASES: Case[] = [
  { name: 'a column added', ddl: 'ALTER TABLE public.t ADD COLUMN w int', write: `UPDATE public.t SET w = id * 10` },
  { name: 'a column renamed', ddl: 'ALTER TABLE public.t RENAME COLUMN v TO v2', write: `UPDATE public.t SET v2 = v2 || '!'` },
  { name: 'a column dropped', ddl: 'ALTER TABLE public.t DROP COLUMN v', write: `UPDATE public.t SET n = n + 1` },
  // Staged in the old type (int), 1.25 would arrive as 1.
  { name: 'a column type changed', ddl: 'ALTER TABLE public.t ALTER COLUMN n TYPE numeric(10,2)', write: `UPDATE public.t SET n = n + 0.25` },
];

async function pair(): Promise<[TestDb, TestDb]> {
  const [a, b] = await createDatabases(2);
  await sqlAll([a!, b!], `CREATE TABLE public.t (id int PRIMARY KEY, v text, n int NOT NULL DEFAULT 0)`);
  await a!.sql(`INSERT INTO public.t SELECT g, 'v' || g, g FROM generate_series(1, 5) g`);
  return [a!, b!];
}

describe('catalog cache: DDL between runs', () => {
  for (const c of CASES) {
    it(`${c.name}: the next run replicates the new shape`, async () => {
      const [a, b] = await pair();
      const rep = await replicators.installed([a, b], { tables: ['public.t'], onetimecopy: 'always' });
      expect((await kick(rep)).tables['public.t']).toMatchObject({ upserted: 5 });
      await sqlAll([a, b], c.ddl);
      await a.sql(c.write);
      const r = await kick(rep);
      expect(r.status).toBe('ok');
      expect(r.tables['public.t']!.upserted).toBeGreaterThan(0);
      const want = await tableContents(a, 'public.t');
      expect(await tableContents(b, 'public.t')).toEqual(want);
    });
  }

  it('a primary key moved to another column: the next run sees the new key', async () => {
    const [a, b] = await pair();
    const rep = await replicators.installed([a, b], { tables: ['public.t'], onetimecopy: 'always' });
    await kick(rep);
    await sqlAll([a, b], 'ALTER TABLE public.t DROP CONSTRAINT t_pkey; ALTER TABLE public.t ADD PRIMARY KEY (n)');
    await a.sql(`UPDATE public.t SET v = 'after' WHERE n = 2`);
    // The capture still records id; the run must notice instead of keying rows by the old key.
    const err = await rep.kick('s').then(
      () => null,
      (e: PgferryError) => e,
    );
    expect(err?.code).toBe('SCHEMA_MISMATCH');
    expect(err?.message).toBe('Table public.t on database "a" is captured with key (id) but its key is now (n). Uninstall and install again.');
  });
});
