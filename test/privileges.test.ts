/**
 * Least privilege: the owner of the replicated tables, a login role that is not superuser
 * and has CREATE on the database, can install, replicate and uninstall.
 */
import { describe, expect, it } from 'vitest';
import { Replicator } from '../src/index.js';
import { createDatabases, createLoginRole, sqlAt, tableContents, type TestDb } from './helpers/db.js';

const TABLES = `
  CREATE TABLE public.customers (id int PRIMARY KEY, name text NOT NULL, email text);
  CREATE TABLE public.orders (
    id bigserial PRIMARY KEY,
    customer_id int NOT NULL,
    total numeric(10, 2) NOT NULL,
    placed_at timestamptz NOT NULL DEFAULT '2024-01-01 00:00:00+00'
  );
`;

describe('least privilege', () => {
  it('a non-superuser owner of the tables can install, replicate and uninstall', async () => {
    const dbs = await createDatabases(2, { keep: true });
    const [a, b] = dbs as [TestDb, TestDb];
    const roles: { db: TestDb; name: string; url: string }[] = [];
    const rep = new Replicator();
    try {
      for (const db of dbs) {
        const role = await createLoginRole(db);
        roles.push({ db, ...role });
        // PostgreSQL 15+ gives PUBLIC no CREATE on schema public; the owner-to-be needs it.
        await db.sql(`GRANT USAGE, CREATE ON SCHEMA public TO ${role.name}`);
        // Tables created by the role itself, so it owns them.
        await sqlAt(role.url, TABLES);
        const who = await sqlAt<{ su: boolean; owner: string }>(
          role.url,
          `SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS su,
                  (SELECT tableowner FROM pg_tables WHERE schemaname = 'public' AND tablename = 'orders') AS owner`,
        );
        expect(who[0]).toEqual({ su: false, owner: role.name });
      }
      const [ra, rb] = roles as [(typeof roles)[0], (typeof roles)[0]];

      await rep.addDatabase('a', ra.url);
      await rep.addDatabase('b', rb.url);
      await rep.addSync('shop', {
        tables: ['public.customers', 'public.orders'],
        databases: { a: 'source', b: 'target' },
        autokick: false,
      });
      await rep.install();

      await sqlAt(ra.url, `
        INSERT INTO public.customers VALUES (1, 'Ada', 'ada@example.com'), (2, 'Bob', NULL), (3, 'Cy', 'cy@example.com');
        INSERT INTO public.orders (customer_id, total) VALUES (1, 10.50), (1, 20.00), (2, 5.25);
      `);
      const first = await rep.kick('shop');
      expect(first).toMatchObject({ sync: 'shop', status: 'ok' });
      for (const t of ['public.customers', 'public.orders']) {
        const want = await tableContents(a, t);
        expect(want.length).toBeGreaterThan(0);
        expect(await tableContents(b, t)).toEqual(want);
      }

      await sqlAt(ra.url, `
        UPDATE public.customers SET email = 'bob@example.com' WHERE id = 2;
        DELETE FROM public.orders WHERE total = 20.00;
        INSERT INTO public.orders (customer_id, total) VALUES (3, 99.99);
        DELETE FROM public.customers WHERE id = 1 AND NOT EXISTS (SELECT 1 FROM public.orders WHERE customer_id = 1);
      `);
      await rep.kick('shop');
      expect(await tableContents(b, 'public.customers')).toEqual([
        '(1,Ada,ada@example.com)',
        '(2,Bob,bob@example.com)',
        '(3,Cy,cy@example.com)',
      ]);
      for (const t of ['public.customers', 'public.orders']) {
        const want = await tableContents(a, t);
        expect(want.length).toBeGreaterThan(0);
        expect(await tableContents(b, t)).toEqual(want);
      }
      expect(await tableContents(b, 'public.orders')).toHaveLength(3);

      await rep.uninstall();
      for (const db of dbs) {
        const left = await db.sql<{ trg: number; nsp: number }>(`
          SELECT (SELECT count(*)::int FROM pg_trigger WHERE NOT tgisinternal) AS trg,
                 (SELECT count(*)::int FROM pg_namespace WHERE nspname = 'pgferry') AS nsp`);
        expect(left[0]).toEqual({ trg: 0, nsp: 0 });
      }
    } finally {
      await rep.stop();
      for (const db of dbs) await sqlAt(db.serverUrl, `DROP DATABASE IF EXISTS ${db.name} WITH (FORCE)`);
      for (const r of roles) await sqlAt(r.db.serverUrl, `DROP ROLE IF EXISTS ${r.name}`);
    }
  });
});
