/**
 * PostgreSQL's built-in logical replication between two benchmark databases: a publication on
 * the source, a subscription on the target (no initial copy: both sides are filled the same
 * way), and the teardown that drops the subscription and its slot before the databases go.
 */
import type { BenchDb } from './pg.js';

/** Server settings for logical replication (the defaults of PostgreSQL 18 for the two counts). */
export const LOGICAL_SETTINGS = { wal_level: 'logical', max_replication_slots: 10, max_wal_senders: 10 } as const;

/** Where `pg_stat_activity` shows native replication's backends: the walsender on the source, the workers on the target. */
export const WALSENDER = `backend_type = 'walsender'`;
export const APPLY_WORKERS = `backend_type LIKE 'logical replication %' AND backend_type <> 'logical replication launcher'`;

export interface Subscription {
  name: string;
  /** `streaming` and `synchronous_commit` of the subscription, as pg_subscription shows them. */
  settings: { streaming: string; synchronousCommit: string };
  drop(): Promise<void>;
}

const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;

/**
 * `CREATE PUBLICATION` for `tables` on `src` and `CREATE SUBSCRIPTION ... WITH (copy_data =
 * false)` on `tgt`; resolves when the apply worker has started streaming.
 */
export async function subscribe(src: BenchDb, tgt: BenchDb, name: string, tables: string[]): Promise<Subscription> {
  await src.sql(`CREATE PUBLICATION ${name} FOR TABLE ${tables.join(', ')}`);
  await tgt.sql(`CREATE SUBSCRIPTION ${name} CONNECTION ${lit(src.url)} PUBLICATION ${name} WITH (copy_data = false)`);
  let dropped = false;
  const drop = async () => {
    if (dropped) return;
    dropped = true;
    // DROP SUBSCRIPTION also drops the slot on the source; when that fails, detach the slot and drop it there.
    try {
      await tgt.sql(`DROP SUBSCRIPTION IF EXISTS ${name}`);
    } catch {
      await tgt.sql(`ALTER SUBSCRIPTION ${name} DISABLE`).catch(() => undefined);
      await tgt.sql(`ALTER SUBSCRIPTION ${name} SET (slot_name = NONE)`).catch(() => undefined);
      await tgt.sql(`DROP SUBSCRIPTION IF EXISTS ${name}`).catch(() => undefined);
      await src.sql(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, [name]).catch(() => undefined);
    }
  };
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const r = await src.sql(`SELECT 1 FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'`, [name]);
      if (r.length) break;
      if (Date.now() > deadline) throw new Error(`subscription ${name}: no streaming walsender after 30 s`);
      await new Promise((res) => setTimeout(res, 50));
    }
    const s = await tgt.sql<{ substream: string; subsynccommit: string }>(`SELECT substream::text, subsynccommit FROM pg_subscription WHERE subname = $1`, [name]);
    const streaming = { f: 'off', t: 'on', p: 'parallel' }[s[0]!.substream] ?? s[0]!.substream;
    return { name, settings: { streaming, synchronousCommit: s[0]!.subsynccommit }, drop };
  } catch (err) {
    await drop();
    throw err;
  }
}

/** Bytes of WAL between two `pg_current_wal_lsn()` readings. */
export async function walLsn(db: BenchDb): Promise<string> {
  return (await db.sql<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l'))[0]!.l;
}

export async function walBytes(db: BenchDb, from: string, to: string): Promise<number> {
  return Number((await db.sql<{ b: string }>('SELECT pg_wal_lsn_diff($2::pg_lsn, $1::pg_lsn)::text AS b', [from, to]))[0]!.b);
}
