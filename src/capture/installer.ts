/**
 * install(), uninstall() and installSql() across the databases of one or more syncs. Every
 * table of every sync is read and checked on every source before anything is created (its
 * key, and the columns and row filter its entry names), so a missing table or key, or a
 * condition that does not parse, leaves every database as it was.
 */
import { requireTable, type TableInfo } from '../catalog/tables.js';
import type { Database } from '../db/database.js';
import { PgferryError } from '../errors.js';
import { checkPartialOnSource } from '../partial.js';
import { isIncremental, namesWithRole, partialOf, type SyncPlan } from '../plan.js';
import { displayName } from '../sql/ident.js';
import { captureSql } from './ddl.js';
import { captureDisagrees, installCapture, migrate, uninstallCapture } from './install.js';

export class Installer {
  readonly #dbs: ReadonlyMap<string, Database>;
  readonly #schema: string;

  constructor(dbs: ReadonlyMap<string, Database>, schema: string) {
    this.#dbs = dbs;
    this.#schema = schema;
  }

  /**
   * Creates the library schema, delta tables and triggers on every source of `plans`, and the
   * library schema (for its fences) on every database they write to.
   */
  async install(plans: SyncPlan[]): Promise<void> {
    const checked = new Map<SyncPlan, Map<string, TableInfo[]>>();
    for (const plan of plans) checked.set(plan, await this.#readSources(plan));
    checkCaptureAgrees(checked);
    // Every receiver answers before anything is changed anywhere.
    // Receivers that are not PostgreSQL are not in #dbs: they need nothing installed here.
    const receivers = new Set(plans.flatMap((plan) => receiversOf(plan)).filter((name) => this.#dbs.has(name)));
    for (const name of receivers) await this.#dbs.get(name)!.query('SELECT 1');
    for (const [plan, perDb] of checked) {
      for (const [name, tables] of perDb) {
        if (!tables.some((t) => t.kind === 'table')) continue; // full copies need no capture
        await this.#dbs.get(name)!.transaction((c) => installCapture(c, this.#schema, name, plan.name, tables, plan.config.capture));
      }
    }
    for (const name of receivers) await this.#dbs.get(name)!.transaction((c) => migrate(c, this.#schema, name));
  }

  /** The DDL install() runs for a sync's tables, for review. Changes nothing. */
  async sql(plan: SyncPlan): Promise<string> {
    const first = [...(await this.#readSources(plan)).values()][0] ?? [];
    return first.flatMap((t) => (t.kind === 'table' ? captureSql(this.#schema, t, plan.config.capture) : [])).join(';\n\n') + ';\n';
  }

  /**
   * Removes capture for `plans` (tables another sync still reads keep theirs), or, with
   * `everything`, all pgferry installed in every database.
   */
  async uninstall(plans: SyncPlan[], everything: boolean): Promise<void> {
    const names = new Set<string>();
    for (const plan of plans) for (const d of plan.databases) if (this.#dbs.has(d.name)) names.add(d.name);
    if (everything) for (const name of this.#dbs.keys()) names.add(name);
    const sync = everything ? undefined : plans[0]?.name;
    for (const name of names) {
      await this.#dbs.get(name)!.transaction((c) => uninstallCapture(c, this.#schema, sync));
    }
  }

  /** Reads and checks every table of a sync on each source (nothing is changed). */
  async #readSources(plan: SyncPlan): Promise<Map<string, TableInfo[]>> {
    const out = new Map<string, TableInfo[]>();
    // Full copies need no key and no capture; changes sent to targets (or between sources) do.
    const incremental = isIncremental(plan);
    for (const { name, role } of plan.databases) {
      if (role !== 'source') continue;
      const infos = await this.#dbs.get(name)!.transaction(async (client) => {
        const list: TableInfo[] = [];
        for (const [i, rel] of plan.relations.entries()) {
          const t = await requireTable(client, rel, name);
          const partial = partialOf(plan, displayName(rel));
          if (partial && t.kind === 'table') await checkPartialOnSource(client, plan.name, i, t, partial, name);
          if (incremental && t.kind === 'table' && t.key.length === 0) {
            throw new PgferryError(
              'NO_PRIMARY_KEY',
              `Table ${displayName(t)} on database "${name}" has no primary key and no unique index on NOT NULL columns, so sync "${plan.name}" cannot replicate it incrementally. Add a primary key, or give it its own sync with a 'fullcopy' target.`,
              { sync: plan.name, database: name, table: displayName(t) },
            );
          }
          list.push(t);
        }
        return list;
      });
      out.set(name, incremental ? infos : []);
    }
    return out;
  }
}

/** The databases a sync writes to: targets and fullcopies, and every source when there are several. */
export function receiversOf(plan: SyncPlan): string[] {
  const several = namesWithRole(plan, 'source').length > 1;
  return namesWithRole(plan, ...(several ? (['source', 'target', 'fullcopy'] as const) : (['target', 'fullcopy'] as const)));
}

/** Syncs installed together that want one table captured in different shapes: refused before anything changes. */
function checkCaptureAgrees(checked: ReadonlyMap<SyncPlan, ReadonlyMap<string, TableInfo[]>>): void {
  const seen = new Map<string, SyncPlan>();
  for (const [plan, perDb] of checked) {
    for (const t of new Set([...perDb.values()].flat().filter((x) => x.kind === 'table').map(displayName))) {
      const other = seen.get(t);
      if (other && other.config.capture !== plan.config.capture) throw captureDisagrees(t, other.name, other.config.capture, plan.name, plan.config.capture);
      if (!other) seen.set(t, plan);
    }
  }
}
