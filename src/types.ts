/** Shared public types that are not derived from a config schema. */

/** Key of a row: the key columns and their values, e.g. `{ id: 42 }`. */
export type RowKey = Record<string, unknown>;
/** A row as node-postgres parses it. */
export type Row = Record<string, unknown>;

export type Role = 'source' | 'target' | 'fullcopy';

/** Where a row passing through a table's transform is going. */
export interface TransformContext {
  sync: string;
  /** `schema.table`, unquoted. */
  table: string;
  /** The receiving database. */
  target: string;
}

/**
 * A table's transform: the row to write on `ctx.target` (columns it leaves out are written as
 * NULL; key columns keep their values), or `null` to leave that key out there.
 */
export type TableTransform = (row: Row, ctx: TransformContext) => Row | null | Promise<Row | null>;

/** What a custom conflict resolver is given: one key changed on two or more sources. */
export interface Conflict {
  sync: string;
  /** `schema.table`, unquoted. */
  table: string;
  key: RowKey;
  /** The current row on each source that changed the key (`null` where it is deleted there). */
  rows: Record<string, Row | null>;
  /** When each of those sources last changed the key (that server's clock at capture). */
  changedAt: Record<string, Date>;
}

/** `{ winner }` copies that database's row everywhere; `{ row }` writes the merged row everywhere. */
export type Resolution = { winner: string } | { row: Row } | 'skip';

export type ConflictResolver = (conflict: Conflict) => Resolution | Promise<Resolution>;

export type BuiltinStrategy = 'latest' | 'abort' | 'skip' | 'random';
export type SimpleStrategy = BuiltinStrategy | string[] | ConflictResolver;
export type ConflictStrategy = SimpleStrategy | { default?: SimpleStrategy; tables: Record<string, SimpleStrategy> };

export interface ExceptionContext {
  sync: string;
  table: string;
  /** The database whose apply failed. */
  database: string;
  error: Error;
  constraint: string | undefined;
  /** Keys that were being applied to `table` on `database`. */
  keys: RowKey[];
  /** Runs SQL inside the run's transaction on `db` (commits or rolls back with the run). */
  query(db: string, text: string, values?: unknown[]): Promise<Row[]>;
}

export type ExceptionHandler = (ctx: ExceptionContext) => 'retry' | 'fail' | Promise<'retry' | 'fail'>;

export interface TableResult {
  upserted: number;
  deleted: number;
  conflicts: number;
}

/** What `kick()` resolves with and `sync:complete` carries. */
export interface RunResult {
  sync: string;
  runId: string;
  status: 'ok' | 'empty';
  reason: RunReason;
  startedAt: Date;
  durationMs: number;
  /** Transactions the changes were applied in on each receiver (large backlogs take several). */
  chunks: number;
  tables: Record<string, TableResult>;
  totals: TableResult;
  /** Sequences of the sync and the value they were set to everywhere. */
  sequences?: Record<string, string>;
}

export type RunReason = 'kick' | 'autokick' | 'check' | 'retry';

/** A settled conflict as a control store keeps it (`rep.conflicts()`). */
export interface ConflictRecord {
  sync: string;
  /** `schema.table`, unquoted. */
  table: string;
  key: RowKey;
  resolution: 'winner' | 'merged' | 'skip';
  winner: string | null;
  /** When it was settled. */
  at: Date;
  /** The row on each source that changed the key, as it was when settled (`null` where deleted). */
  rows: Record<string, Row | null>;
}
