import type { ResolvedSyncConfig } from './config.js';
import type { TablePartial } from './partial.js';
import type { QualifiedName } from './sql/ident.js';
import type { Role } from './types.js';

/** A sync as the engine sees it: parsed names and roles in configured order. */
export interface SyncPlan {
  name: string;
  config: ResolvedSyncConfig;
  /** Tables and sequences as listed (parsed); whether each is a sequence is known once read. */
  relations: QualifiedName[];
  databases: { name: string; role: Role }[];
  /** Options of the tables listed with some (columns, where, transform), by display name. */
  partial?: ReadonlyMap<string, TablePartial>;
}

/** The options a sync gives table `display` (undefined: the whole table, as it is). */
export function partialOf(plan: SyncPlan, display: string): TablePartial | undefined {
  return plan.partial?.get(display);
}

export function namesWithRole(plan: SyncPlan, ...roles: Role[]): string[] {
  return plan.databases.filter((d) => roles.includes(d.role)).map((d) => d.name);
}

/** Whether runs move changes (to targets or between sources), so the sources need capture and keys. */
export function isIncremental(plan: SyncPlan): boolean {
  return plan.databases.filter((d) => d.role !== 'fullcopy').length > 1;
}
