/**
 * validate({ repair: true }): makes every database equal to the winner of each table (the one
 * source; else the first database of the sync's precedence list; else the first source).
 *
 * It runs as a run does, so that it never overlaps one (invariant 9): the sync's run lock on
 * every source in name order, then one REPEATABLE READ transaction per database (validation
 * reads in it too); a generation taken after the locks, and each receiver's fence passed
 * before its commit. Repaired writes carry the sync's applied-by setting and the winner as
 * their origin, like the applier's, so the sync never sends them back.
 *
 * The differing keys go into a key table on the winner as they are found; then, per
 * receiver, in one transaction: the winner's rows of those keys are staged (COPY), keys
 * whose row there is already the winner's are dropped, and so are keys with a change on that
 * receiver that no run has delivered yet (a write there that the next run carries: repair
 * must not throw it away; they are reported as pending). Upserts go parents first, whole
 * tables without a key are replaced, deletes go children first. A table with an undelivered
 * TRUNCATE on a source is left alone (the next run empties the receivers).
 */
import { applyDeletes, applyUpserts } from '../apply/applier.js';
import { createStaging, stageRows } from '../apply/staging.js';
import { passFence, passFenceIfInstalled, type Generation } from '../apply/fence.js';
import { copyTable, emptyTable } from '../apply/fullcopy.js';
import { binaryCompatible, type TableInfo } from '../catalog/tables.js';
import type { Session } from '../db/session.js';
import { markCte, undelivered } from '../delta/backlog.js';
import { PgferryError } from '../errors.js';
import { isIncremental, namesWithRole, type SyncPlan } from '../plan.js';
import { displayName, ident, identList, keyJoin, qualified } from '../sql/ident.js';
import { deltaTableName, STAGING, type TempNames } from '../sql/names.js';
import type { RowKey } from '../types.js';
import type { FoundKey } from './compare.js';
import { castKey } from './ranges.js';

/** What repair changed on one database for one table. */
export interface TableRepair {
  /** Rows written (inserted or updated) there. */
  upserted: number;
  /** Rows deleted there. */
  deleted: number;
  /** Differing keys left as they are: a change to them there is not delivered yet (the next run settles them). */
  pending: number;
  /** The first of those keys. */
  pendingKeys: RowKey[];
}

/** One table as the repair sees it. */
export interface RepairTable {
  info: TableInfo;
  display: string;
  columns: string[];
  temp: TempNames;
  winner: string;
  /** The table as each database's catalog describes it. */
  here: Map<string, TableInfo>;
  /** Keys in the winner's key table. */
  keys: number;
  /** Without a key: the databases whose rows differ from the winner's (replaced whole). */
  replace: Set<string>;
  /** Why the table is left alone, when it is. */
  skipped?: string;
  repaired: Record<string, TableRepair>;
}

const LISTED = 100;
/** SQLSTATE undefined_table. */
const UNDEFINED_TABLE = '42P01';

/** The database whose rows a table's repair keeps. */
export function winnerOf(plan: SyncPlan, table: string): string {
  const cs = plan.config.conflictStrategy;
  const lists = typeof cs === 'object' && !Array.isArray(cs) ? [cs.tables[table], cs.default] : [cs];
  for (const l of lists) if (Array.isArray(l) && l.length > 0) return l[0]!;
  return namesWithRole(plan, 'source')[0]!;
}

export class Repair {
  readonly #plan: SyncPlan;
  readonly #schema: string;
  readonly #sessions: ReadonlyMap<string, Session>;
  readonly #generation: Generation;
  readonly tables: RepairTable[] = [];

  constructor(plan: SyncPlan, schema: string, sessions: ReadonlyMap<string, Session>, generation: Generation) {
    this.#plan = plan;
    this.#schema = schema;
    this.#sessions = sessions;
    this.#generation = generation;
  }

  /** Starts the repair of a table (tables come parents first). */
  async table(info: TableInfo, here: Map<string, TableInfo>, columns: string[]): Promise<RepairTable> {
    const n = this.tables.length;
    const display = displayName(info);
    const t: RepairTable = {
      info, display, columns, here, keys: 0, replace: new Set(), repaired: {},
      temp: { keys: `pgferry_vk_${n}`, staging: `pgferry_vs_${n}`, contenders: `pgferry_vc_${n}` },
      winner: winnerOf(this.#plan, display),
    };
    if (await this.#truncatePending(info)) t.skipped = 'a TRUNCATE on a source is not delivered yet; the next run settles the table';
    this.tables.push(t);
    return t;
  }

  /** Whether a source has a TRUNCATE of the table that the sync has not delivered. */
  async #truncatePending(t: TableInfo): Promise<boolean> {
    if (!isIncremental(this.#plan)) return false;
    for (const name of namesWithRole(this.#plan, 'source')) {
      const s = this.#sessions.get(name)!;
      const r = await s
        .query<{ p: boolean }>(
          `WITH ${markCte(this.#schema)}
           SELECT EXISTS (SELECT 1 FROM ${ident(this.#schema)}.truncates d WHERE d.table_schema = $2 AND d.table_name = $3
                            AND ${undelivered(this.#plan.config)}) AS p`,
          [this.#plan.name, t.schema, t.name],
        )
        .catch((err) => {
          if ((err as { code?: string }).code !== UNDEFINED_TABLE) throw err;
          throw new PgferryError('NOT_INSTALLED', `Sync "${this.#plan.name}" is not installed on source database "${name}", so its undelivered changes cannot be told apart: call install('${this.#plan.name}') before a repair.`, {
            sync: this.#plan.name,
            database: name,
          });
        });
      if (r.rows[0]!.p) return true;
    }
    return false;
  }

  /** Adds differing keys to the winner's key table. */
  async keys(t: RepairTable, found: FoundKey[]): Promise<void> {
    if (t.skipped || found.length === 0) return;
    const w = this.#sessions.get(t.winner)!;
    const wi = t.here.get(t.winner)!;
    const k = wi.key;
    if (t.keys === 0) {
      // Unique: a key found twice (spelled two ways, e.g. citext) is staged once.
      await w.tempTable(
        t.temp.keys,
        `CREATE TEMP TABLE ${ident(t.temp.keys)} ON COMMIT DELETE ROWS AS
           SELECT ${identList(k)}, NULL::timestamptz AS changed_at, NULL::text AS pgferry_origin, 0::bigint AS pgferry_n
             FROM ONLY ${qualified(wi)} WITH NO DATA;
         CREATE UNIQUE INDEX ON pg_temp.${ident(t.temp.keys)} (${identList(k)})`,
      );
    }
    const arrays = k.map((_, i) => found.map((f) => f.kt[i]));
    const r = await w.query(
      `INSERT INTO pg_temp.${ident(t.temp.keys)} (${identList(k)}, pgferry_n)
       SELECT ${k.map((_, i) => castKey(wi, i, `r.v${i}`)).join(', ')}, $${k.length + 1}::int8 + r.o
         FROM ROWS FROM (${k.map((_, i) => `pg_catalog.unnest($${i + 1}::text[])`).join(', ')}) WITH ORDINALITY AS r(${k.map((_, i) => `v${i}`).join(', ')}, o)
       ON CONFLICT DO NOTHING`,
      [...arrays, t.keys],
    );
    t.keys += r.rowCount ?? 0;
  }

  /** Writes the repairs on every receiver, one transaction each, and commits them. */
  async apply(): Promise<void> {
    for (const t of this.tables) if (t.keys > 1000) await this.#sessions.get(t.winner)!.query(`ANALYZE pg_temp.${ident(t.temp.keys)}`);
    for (const { name, role } of this.#plan.databases) {
      const work = this.tables.filter((t) => !t.skipped && t.winner !== name && (t.keys > 0 || t.replace.has(name)));
      if (work.length === 0) continue;
      const r = this.#sessions.get(name)!;
      for (const t of work) if (t.keys > 0) await this.#stage(r, t, role === 'source' && isIncremental(this.#plan));
      for (const t of work) await this.#upsert(r, t);
      for (const t of [...work].reverse()) await this.#delete(r, t);
      if (work.some((t) => t.repaired[name]!.upserted + t.repaired[name]!.deleted > 0)) {
        await (role === 'fullcopy' ? passFenceIfInstalled : passFence)(r, this.#schema, this.#plan.name, this.#generation);
        await r.commit();
      }
    }
  }

  /** Stages the winner's rows of the table's keys on `r`, less what `r` already holds and what is pending there. */
  async #stage(r: Session, t: RepairTable, source: boolean): Promise<void> {
    const here = t.here.get(r.name)!;
    const w = this.#sessions.get(t.winner)!;
    const st = `pg_temp.${ident(t.temp.staging)}`;
    const match = keyJoin(here, 'd', 's');
    await createStaging(r, here, t.temp, t.columns);
    await stageRows(w, r, t.here.get(t.winner)!, t.temp, t.columns);
    await r.query(
      `DELETE FROM ${st} s WHERE CASE WHEN s.${STAGING.present}
         THEN EXISTS (SELECT 1 FROM ONLY ${qualified(here)} d WHERE ${match}
                        AND ROW(${identList(t.columns, 'd')})::text OPERATOR(pg_catalog.=) ROW(${identList(t.columns, 's')})::text)
         ELSE NOT EXISTS (SELECT 1 FROM ONLY ${qualified(here)} d WHERE ${match}) END`,
    );
    const pending = source ? await this.#dropPending(r, t, here) : { n: 0, keys: [] };
    const c = await r.query<{ up: number; del: number }>(
      `SELECT pg_catalog.count(*) FILTER (WHERE ${STAGING.present})::int AS up, pg_catalog.count(*) FILTER (WHERE NOT ${STAGING.present})::int AS del FROM ${st}`,
    );
    t.repaired[r.name] = { upserted: c.rows[0]!.up, deleted: c.rows[0]!.del, pending: pending.n, pendingKeys: pending.keys };
  }

  /** Drops staged keys that have an undelivered change on `r` (a source); returns how many, and the first of them. */
  async #dropPending(r: Session, t: RepairTable, here: TableInfo): Promise<{ n: number; keys: RowKey[] }> {
    const d = `${ident(this.#schema)}.${ident(deltaTableName(t.info))}`;
    const res = await r.query<{ pgferry_count: number } & RowKey>(
      `WITH ${markCte(this.#schema)},
       gone AS (DELETE FROM pg_temp.${ident(t.temp.staging)} s
                 WHERE EXISTS (SELECT 1 FROM ${d} d WHERE ${keyJoin(here, 'd', 's')} AND ${undelivered(this.#plan.config)})
                 RETURNING ${identList(here.key, 's')})
       SELECT c.n::int AS pgferry_count, g.* FROM (SELECT pg_catalog.count(*) AS n FROM gone) c LEFT JOIN (SELECT * FROM gone LIMIT ${LISTED}) g ON true`,
      [this.#plan.name],
    );
    const n = res.rows[0]?.pgferry_count ?? 0;
    return { n, keys: n === 0 ? [] : res.rows.map(({ pgferry_count: _, ...key }) => key) };
  }

  async #upsert(r: Session, t: RepairTable): Promise<void> {
    const here = t.here.get(r.name)!;
    if (t.keys > 0) {
      if (t.repaired[r.name]!.upserted > 0) await applyUpserts(r, here, t.temp, t.columns, false, { origins: [t.winner], present: new Map() });
      return;
    }
    // Without a key: the winner's rows replace the table's.
    const before = await r.query<{ n: number }>(`SELECT pg_catalog.count(*)::int AS n FROM ONLY ${qualified(here)}`);
    await emptyTable(r, here);
    const from = t.here.get(t.winner)!;
    const rows = await copyTable(this.#sessions.get(t.winner)!, r, from, t.columns, { binary: binaryCompatible(from, here, t.columns) });
    t.repaired[r.name] = { upserted: rows, deleted: before.rows[0]!.n, pending: 0, pendingKeys: [] };
  }

  async #delete(r: Session, t: RepairTable): Promise<void> {
    if (t.keys > 0 && t.repaired[r.name]!.deleted > 0) await applyDeletes(r, t.here.get(r.name)!, t.temp, false, [t.winner]);
  }
}
