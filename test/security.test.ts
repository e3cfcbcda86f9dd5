/**
 * No borrowed rights (DESIGN.md invariant 10): a writer that controls its search_path and can
 * create operators cannot make pgferry's capture run its code with the installer's rights;
 * capture functions belong to the tables' owners; pgferry's own sessions pin search_path and
 * the settings that change how values print, whatever the role and database defaults.
 */
import { describe, expect, it } from 'vitest';
import { connect, createDatabases, createLoginRole, sqlAll, sqlAt, tableContents, type TestDb } from './helpers/db.js';
import { kick, stopReplicatorsAfterEach } from './helpers/replicators.js';

const replicators = stopReplicatorsAfterEach();

/**
 * Schema `evil` (owned by `role`) with `=` for (int, int), (text, text) and (boolean, boolean):
 * each call records current_user in evil.calls, then compares as the built-in would.
 */
const PLANT = `
  CREATE SCHEMA evil;
  CREATE TABLE evil.calls (who text NOT NULL, at timestamptz NOT NULL DEFAULT now());
  GRANT INSERT ON evil.calls TO PUBLIC;
  GRANT USAGE ON SCHEMA evil TO PUBLIC;
  CREATE FUNCTION evil.eq(int, int) RETURNS boolean LANGUAGE plpgsql AS
    $$ BEGIN INSERT INTO evil.calls (who) VALUES (current_user); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
  CREATE FUNCTION evil.eq(text, text) RETURNS boolean LANGUAGE plpgsql AS
    $$ BEGIN INSERT INTO evil.calls (who) VALUES (current_user); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
  CREATE FUNCTION evil.eq(boolean, boolean) RETURNS boolean LANGUAGE plpgsql AS
    $$ BEGIN INSERT INTO evil.calls (who) VALUES (current_user); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
  CREATE OPERATOR evil.= (LEFTARG = int, RIGHTARG = int, FUNCTION = evil.eq);
  CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.eq);
  CREATE OPERATOR evil.= (LEFTARG = boolean, RIGHTARG = boolean, FUNCTION = evil.eq);
  -- Types named like the ones capture declares: found first on the writer's search_path.
  CREATE DOMAIN evil.text AS int CHECK (evil.eq(VALUE, VALUE));
  CREATE DOMAIN evil.xid8 AS int CHECK (evil.eq(VALUE, VALUE));
  CREATE DOMAIN evil.timestamptz AS int CHECK (evil.eq(VALUE, VALUE));
  GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA evil TO PUBLIC;
`;

/** Every row of public.v as text, printed with the same settings on any database. */
async function shown(db: TestDb): Promise<string[]> {
  const c = await connect(db);
  await c.query(`SET DateStyle = 'ISO'; SET IntervalStyle = 'postgres'; SET TimeZone = 'UTC'; SET extra_float_digits = 3; SET bytea_output = 'hex'; SET search_path = pg_catalog, public`);
  return (await c.query<{ r: string }>(`SELECT t::text AS r FROM public.v t ORDER BY id`)).rows.map((x) => x.r);
}

async function dropRoles(dbs: TestDb[], names: string[]): Promise<void> {
  for (const db of dbs) await sqlAt(db.serverUrl, `DROP DATABASE IF EXISTS ${db.name} WITH (FORCE)`);
  for (const name of names) await sqlAt(dbs[0]!.serverUrl, `DROP ROLE IF EXISTS ${name}`).catch(() => {});
}

describe('no borrowed rights', () => {
  it("a writer's operators on its search_path never run inside capture; capture functions belong to the table owner", async () => {
    const dbs = await createDatabases(2, { keep: true, sameServer: true });
    const [a, b] = dbs as [TestDb, TestDb];
    const owner = await createLoginRole(a);
    const writer = await createLoginRole(a);
    try {
      await a.sql(`GRANT USAGE, CREATE ON SCHEMA public TO ${owner.name}`);
      await sqlAt(owner.url, `CREATE TABLE public.t (id int PRIMARY KEY, v text NOT NULL, ok boolean NOT NULL DEFAULT true)`);
      await sqlAt(owner.url, `GRANT SELECT, INSERT, UPDATE, DELETE ON public.t TO ${writer.name}`);
      await b.sql(`CREATE TABLE public.t (id int PRIMARY KEY, v text NOT NULL, ok boolean NOT NULL DEFAULT true)`);
      await sqlAt(writer.url, PLANT);

      // The installer is a superuser: the role whose rights must not be borrowed.
      const rep = replicators.create();
      await rep.addDatabase('a', a.url);
      await rep.addDatabase('b', b.url);
      await rep.addSync('s', { tables: ['t'], databases: { a: 'source', b: 'target' }, autokick: false });
      await rep.install();
      const fns = await a.sql<{ owner: string; secdef: boolean; config: string[] | null }>(
        `SELECT pg_get_userbyid(p.proowner) AS owner, p.prosecdef AS secdef, p.proconfig AS config
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'pgferry'`,
      );
      // No SET clause: every name in the body is qualified (see src/capture/ddl.ts).
      expect(fns).toEqual([{ owner: owner.name, secdef: true, config: null }]);

      // Temporary tables named like the transition tables come before every schema for
      // relations: the capture must still read the statement's own rows.
      const attack = `SET search_path = evil, pg_catalog, public;
        CREATE TEMP TABLE new_rows (id int, v pg_catalog.text, ok boolean); INSERT INTO new_rows VALUES (100, 'x', true);
        CREATE TEMP TABLE old_rows (id int, v pg_catalog.text, ok boolean); INSERT INTO old_rows VALUES (200, 'y', true);
        INSERT INTO public.t (id, v) VALUES (1, 'one'), (2, 'two');
        UPDATE public.t SET v = 'changed', ok = false WHERE id OPERATOR(pg_catalog.=) 1;
        UPDATE public.t SET id = 3 WHERE id OPERATOR(pg_catalog.=) 2;
        DELETE FROM public.t WHERE id OPERATOR(pg_catalog.=) 3;
        TRUNCATE public.t;`;
      // The writer may not truncate: grant it for this statement's sake, so every trigger fires.
      await sqlAt(owner.url, `GRANT TRUNCATE ON public.t TO ${writer.name}`);
      await sqlAt(writer.url, attack);
      await sqlAt(writer.url, `SET search_path = evil, pg_catalog, public; INSERT INTO public.t (id, v) VALUES (7, 'seven')`);

      const calls = await a.sql<{ who: string }>(`SELECT DISTINCT who FROM evil.calls`);
      expect(calls).toEqual([]);
      expect(await a.sql(`SELECT rolsuper FROM pg_roles WHERE rolname = $1`, [writer.name])).toEqual([{ rolsuper: false }]);

      // Capture still records everything: the target gets the TRUNCATE and the row after it.
      await b.sql(`INSERT INTO t (id, v) VALUES (1, 'old'), (5, 'five')`);
      const r = await kick(rep);
      expect(r.status).toBe('ok');
      expect(await tableContents(b, 'public.t')).toEqual(['(7,seven,t)']);
      expect(await a.sql(`SELECT DISTINCT who FROM evil.calls`)).toEqual([]);
    } finally {
      await dropRoles(dbs, [owner.name, writer.name]);
    }
  });

  it.each(['row', 'statement'] as const)(
    "capture '%s': an operator for a domain key, planted in the schema of the key's operator, never runs with another role's rights, and moved keys are still captured",
    async (mode) => {
      const dbs = await createDatabases(2, { keep: true, sameServer: true });
      const [a, b] = dbs as [TestDb, TestDb];
      const owner = await createLoginRole(a);
      const writer = await createLoginRole(a);
      try {
        const ddl = `CREATE EXTENSION IF NOT EXISTS citext SCHEMA public; CREATE DOMAIN public.email AS public.citext`;
        await sqlAll(dbs, ddl);
        await b.sql(`CREATE TABLE public.u (id public.email PRIMARY KEY, v text NOT NULL)`);
        await a.sql(`GRANT USAGE, CREATE ON SCHEMA public TO ${owner.name}, ${writer.name}; CREATE TABLE public.calls (who text NOT NULL); GRANT INSERT ON public.calls TO PUBLIC`);
        await sqlAt(owner.url, `CREATE TABLE public.u (id public.email PRIMARY KEY, v text NOT NULL); GRANT SELECT, INSERT, UPDATE, DELETE ON public.u TO ${writer.name}`);
        const rep = replicators.create();
        await rep.addDatabase('a', a.url);
        await rep.addDatabase('b', b.url);
        await rep.addSync('s', { tables: ['public.u'], databases: { a: 'source', b: 'target' }, autokick: false, capture: mode });
        await rep.install();
        await sqlAt(writer.url, `INSERT INTO public.u VALUES ('Ann@x', 'a'), ('Bob@x', 'b')`);
        expect((await kick(rep)).status).toBe('ok');
        // Exact match for (email, email), in the schema where citext's own = lives: says every key is equal.
        await sqlAt(
          writer.url,
          `CREATE FUNCTION public.evil_eq(public.email, public.email) RETURNS boolean LANGUAGE plpgsql AS
             $$ BEGIN INSERT INTO public.calls VALUES (current_user); RETURN true; END $$;
           CREATE OPERATOR public.= (LEFTARG = public.email, RIGHTARG = public.email, FUNCTION = public.evil_eq)`,
        );
        await sqlAt(writer.url, `UPDATE public.u SET id = 'Cy@x' WHERE id::public.citext OPERATOR(public.=) 'ann@X'::public.citext`);
        expect((await kick(rep)).status).toBe('ok');
        expect(await tableContents(b, 'public.u')).toEqual(['(Bob@x,b)', '(Cy@x,a)']);
        expect(await a.sql(`SELECT DISTINCT who FROM public.calls`)).toEqual([]);
      } finally {
        await dropRoles(dbs, [owner.name, writer.name]);
      }
    },
  );

  it("operators planted in public with a better-matching type never run in pgferry's own SQL", async () => {
    const dbs = await createDatabases(2);
    const [a, b] = dbs as [TestDb, TestDb];
    // numeric * integer has no exact match in pg_catalog: a planted one would be picked by type.
    const plant = `CREATE TABLE public.calls (who text);
      CREATE FUNCTION public.mul(numeric, integer) RETURNS numeric LANGUAGE plpgsql AS
        $$ BEGIN INSERT INTO public.calls VALUES (current_user); RETURN $1 OPERATOR(pg_catalog.*) $2; END $$;
      CREATE OPERATOR public.* (LEFTARG = numeric, RIGHTARG = integer, FUNCTION = public.mul)`;
    await sqlAll(dbs, `${plant}; CREATE TABLE public.t (id int PRIMARY KEY, v text)`);
    const rep = replicators.create();
    await rep.addDatabase('a', a.url);
    await rep.addDatabase('b', b.url);
    await rep.addSync('s', { tables: ['t'], databases: { a: 'source', b: 'source' }, autokick: false });
    await rep.install();
    await a.sql(`INSERT INTO t VALUES (1, 'a'), (2, 'a')`);
    await b.sql(`INSERT INTO t VALUES (1, 'b')`); // a conflict: changed_at in microseconds
    await kick(rep);
    await a.sql(`TRUNCATE t`); // TRUNCATE times in microseconds
    await a.sql(`INSERT INTO t VALUES (3, 'after')`);
    await kick(rep);
    expect(await tableContents(b, 'public.t')).toEqual(['(3,after)']);
    for (const db of dbs) expect(await db.sql(`SELECT who FROM public.calls`)).toEqual([]);
  });

  it("pgferry's sessions pin search_path and the settings that change how values print", async () => {
    const dbs = await createDatabases(2, { keep: true });
    const [a, b] = dbs as [TestDb, TestDb];
    const planter = await createLoginRole(a);
    try {
      const ddl = `CREATE TABLE public.v (id int PRIMARY KEY, b bytea, d date, ts timestamp, tz timestamptz, i interval, f float8, r real, s text)`;
      await sqlAll([a, b], ddl);
      await sqlAt(planter.url, PLANT);
      await a.sql(`GRANT ALL ON SCHEMA evil TO PUBLIC`);
      // Defaults that would change how keys and rows print, and where names resolve.
      for (const db of [a, b]) {
        await db.sql(`ALTER DATABASE ${db.name} SET bytea_output = 'escape'`);
        await db.sql(`ALTER DATABASE ${db.name} SET standard_conforming_strings = off`);
        await db.sql(`ALTER DATABASE ${db.name} SET extra_float_digits = -3`);
      }
      await a.sql(`ALTER DATABASE ${a.name} SET DateStyle = 'SQL, DMY'`);
      await a.sql(`ALTER DATABASE ${a.name} SET IntervalStyle = 'sql_standard'`);
      await a.sql(`ALTER DATABASE ${a.name} SET TimeZone = 'Pacific/Chatham'`);
      await a.sql(`ALTER DATABASE ${a.name} SET search_path = evil, pg_catalog, public`);
      await b.sql(`ALTER DATABASE ${b.name} SET DateStyle = 'German, MDY'`);
      await b.sql(`ALTER DATABASE ${b.name} SET TimeZone = 'America/St_Johns'`);

      const rep = replicators.create();
      await rep.addDatabase('a', a.url);
      await rep.addDatabase('b', b.url);
      await rep.addSync('s', { tables: ['v'], databases: { a: 'source', b: 'target' }, autokick: false });
      await rep.install();
      await a.sql(`INSERT INTO public.v VALUES
        (1, decode('00ff5c27', 'hex'), '2024-02-29', '2024-02-29 23:59:59.123456', '2024-02-29 23:59:59.123456+05:30', '1 year 2 mons 3 days 04:05:06.789', 0.1, 1.5, 'a''b' || chr(92) || 'c'),
        (2, NULL, '0001-01-01 BC', 'infinity', '-infinity', '-1 day +02:00', 'NaN', '-0', E'tab\\there')`);
      await kick(rep);
      await a.sql(`UPDATE public.v SET f = f * 3, i = i * 2 WHERE id OPERATOR(pg_catalog.=) 1`);
      await kick(rep);
      // Compared in sessions with the same settings: every value equal, to the microsecond.
      const [wa, wb] = await Promise.all([shown(a), shown(b)]);
      expect(wa).toHaveLength(2);
      expect(wb).toEqual(wa);
      expect(await a.sql(`SELECT DISTINCT who FROM evil.calls`)).toEqual([]);
      expect((await rep.validate('s')).equal).toBe(true);
    } finally {
      await dropRoles(dbs, [planter.name]);
    }
  });
});
