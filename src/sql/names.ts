/**
 * Names that several parts must agree on: the objects capture installs, the temporary tables a
 * run fills on one side and reads on the other, and the transaction-local settings that tag
 * replicated writes. Shared here so that the delta reader and the applier never import each
 * other.
 */
import { displayName, shortHash, type QualifiedName } from './ident.js';

/** Transaction-local settings the applier sets so captured changes carry where they came from. */
export const APPLIED_BY_SETTING = 'pgferry.applied_by';
export const ORIGIN_SETTING = 'pgferry.origin';

/** The delta table of a captured table, in the library schema. */
export function deltaTableName(t: QualifiedName): string {
  return `delta_${shortHash(displayName(t))}`;
}

/** The capture trigger function of a captured table, in the library schema. */
export function captureFunctionName(t: QualifiedName): string {
  return `capture_${shortHash(displayName(t))}`;
}

/** Suffixes of the four capture triggers a captured table carries. */
export const TRIGGER_SUFFIXES = ['_ins', '_upd', '_del', '_trunc'] as const;

/** A capture trigger's name: `<schema>_capture<suffix>`. */
export function triggerName(schema: string, suffix: (typeof TRIGGER_SUFFIXES)[number]): string {
  return `${schema}_capture${suffix}`;
}

/** Temporary tables of one table in a run (by its position in the run's table order). */
export interface TempNames {
  /** On a source: the changed keys read this run. */
  keys: string;
  /** On a receiver: the rows staged to apply. */
  staging: string;
  /** On the first source (multi-master): every source's changed keys, to find conflicts. */
  contenders: string;
}

export function tempNames(position: number): TempNames {
  return { keys: `pgferry_k_${position}`, staging: `pgferry_s_${position}`, contenders: `pgferry_c_${position}` };
}

/** Columns of a key table besides the key columns. */
export const KEY_TABLE = { changedAt: 'changed_at', origin: 'pgferry_origin', number: 'pgferry_n' } as const;

/** Columns of a staging table besides the table's own. */
export const STAGING = { present: 'pgferry_present', source: 'pgferry_source', origin: 'pgferry_origin', number: 'pgferry_n' } as const;

/**
 * Tables one statement covers where a run reads or counts every table at once (the changed
 * keys on a source, the staged rows on a receiver): a statement's planning grows faster than
 * its tables, and PostgreSQL parses a UNION of thousands of branches past its stack limit.
 */
export const TABLES_PER_STATEMENT = 50;
