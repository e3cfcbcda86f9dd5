/**
 * The capture function's plans. PL/pgSQL keeps a statement's plan for the session, made with
 * the transition table sizes of its first call: after a one-row UPDATE, a bulk UPDATE in the
 * same session must not find moved keys by a nested loop over both transition tables
 * (quadratic: 13 s for 20k rows before). The plans are read from auto_explain.
 */
import { describe, expect, it } from 'vitest';
import { connect, count, createDatabases, sqlAll, tableContents } from './helpers/db.js';
import { kick, stopReplicatorsAfterEach } from './helpers/replicators.js';

const replicators = stopReplicatorsAfterEach();

/** Plans of the statements a session runs from here on, nested ones included (as NOTICEs). */
async function plansOf(run: (q: (text: string) => Promise<unknown>) => Promise<void>, url: string): Promise<string[]> {
  const c = await connect(url);
  const plans: string[] = [];
  try {
    c.on('notice', (n) => {
      if (n.message?.includes('Query Text:')) plans.push(n.message);
    });
    await run(async (text) => c.query(text));
  } finally {
    await c.end();
  }
  return plans;
}

const EXPLAIN = `LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on; SET auto_explain.log_level = notice`;

describe('capture plans', () => {
  it('a bulk UPDATE after a one-row UPDATE in the same session: moved keys by a set operation, not a nested loop', async () => {
    const [a, b] = await createDatabases(2);
    await sqlAll([a!, b!], `CREATE TABLE public.t (id int PRIMARY KEY, v int NOT NULL)`);
    await a!.sql(`INSERT INTO public.t SELECT g, 0 FROM generate_series(1, 2000) g`);
    const rep = await replicators.installed([a!, b!], { tables: ['public.t'], onetimecopy: 'always', capture: 'statement' });
    await kick(rep);
    const plans = await plansOf(async (q) => {
      await q(`UPDATE public.t SET v = 1 WHERE id = 1`);
      await q(EXPLAIN);
      await q(`UPDATE public.t SET v = v + 1, id = CASE WHEN id <= 10 THEN id + 10000 ELSE id END`);
    }, a!.url);
    const capture = plans.filter((p) => p.includes('old_rows'));
    expect(capture).toHaveLength(1);
    expect(capture[0]).toMatch(/SetOp Except All/);
    expect(capture[0]).not.toMatch(/Nested Loop/);
    // The moved keys were captured: the ten old keys are gone on the target too.
    await kick(rep);
    expect(await count(b!)).toBe(2000);
    expect(await tableContents(b!, 'public.t')).toEqual(await tableContents(a!, 'public.t'));
  });

  it('a key whose index has another operator class: moved keys by an anti-join on its operators, and captured', async () => {
    const [a, b] = await createDatabases(2);
    // No primary key: the key is the unique index on k, with text_pattern_ops (not the default class).
    const ddl = `CREATE TABLE public.t (k text NOT NULL, v int NOT NULL); CREATE UNIQUE INDEX t_k ON public.t (k text_pattern_ops)`;
    await sqlAll([a!, b!], ddl);
    await a!.sql(`INSERT INTO public.t SELECT 'k' || g, g FROM generate_series(1, 20) g`);
    const rep = await replicators.installed([a!, b!], { tables: ['public.t'], onetimecopy: 'always', capture: 'statement' });
    await kick(rep);
    const plans = await plansOf(async (q) => {
      await q(EXPLAIN);
      await q(`UPDATE public.t SET k = k || '-moved' WHERE v <= 5`);
    }, a!.url);
    const capture = plans.filter((p) => p.includes('old_rows'));
    expect(capture).toHaveLength(1);
    expect(capture[0]).toMatch(/Anti Join/);
    expect(capture[0]).not.toMatch(/EXCEPT/);
    await kick(rep);
    expect(await tableContents(b!, 'public.t')).toEqual(await tableContents(a!, 'public.t'));
    expect(await count(b!)).toBe(20);
  });
});
