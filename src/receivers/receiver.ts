/**
 * A receiving database, as the run sees it: begin a transaction, take a chunk of upserts and
 * deletes of one table, empty a table, take a whole copy, commit or roll back. The run asks a
 * receiver its capabilities instead of its kind.
 *
 * PostgreSQL receivers (postgres.ts) are `staged`: a chunk's rows reach them as COPY data in
 * a temporary table on their own server and are written set-based (apply/applier.ts), never
 * parsed in JavaScript. The others (SQLite, MySQL/MariaDB, Redis) take rows parsed from the
 * source a batch at a time (apply/batches.ts), in a transaction of their own per chunk; the
 * watermarks move only after every receiver of every chunk committed (sync/watermarks.ts).
 */
import type { Generation } from '../apply/fence.js';
import type { Role, Row, RowKey } from '../types.js';

export type ReceiverKind = 'postgres' | 'sqlite' | 'mysql' | 'redis';

export interface ReceiverCapabilities {
  /** The roles it can take in a sync. */
  roles: readonly Role[];
  /** Rows reach it as COPY data staged on its own server (PostgreSQL), else parsed, in batches. */
  staged: boolean;
  /** validate() and repair can compare it. */
  validate: boolean;
}

/** A column as a receiver needs it: its name and its PostgreSQL type at the source. */
export interface ReceiverColumn {
  name: string;
  /** `format_type` at the source, e.g. `numeric(40,0)`, `integer[]`. */
  type: string;
  typeOid: number;
  elemOid: number;
}

/** A table as a receiver writes it. */
export interface ReceiverTable {
  /** `schema.table`, unquoted. */
  display: string;
  schema: string;
  name: string;
  /** Key columns, in key order. */
  key: string[];
  /** The columns that travel (key columns included), in table order. */
  columns: ReceiverColumn[];
}

/**
 * A chunk's changes of one table. Rows come in PostgreSQL's text form, except smallint,
 * integer, real and double precision (numbers), boolean (booleans) and bytea (Buffers);
 * a transform may return other JavaScript values (Date, arrays, objects), which are mapped too.
 */
export interface RowChanges {
  upserts: Row[];
  /** Keys whose rows are gone at the source. */
  deletes: RowKey[];
}

/** What one apply() wrote. */
export interface Written {
  upserted: number;
  /** Rows that existed on the receiver and were deleted. */
  deleted: number;
}

export interface Receiver {
  readonly name: string;
  readonly kind: ReceiverKind;
  readonly capabilities: ReceiverCapabilities;
  /** Checks that every table exists with the columns that travel and the same key (TABLE_NOT_FOUND, SCHEMA_MISMATCH). */
  check(tables: readonly ReceiverTable[]): Promise<void>;
  /** Opens the receiver's transaction (one per chunk, or per full copy). */
  begin(): Promise<void>;
  /** Writes one batch: the deletes, then the upserts (insert or replace the row by its key). */
  apply(t: ReceiverTable, changes: RowChanges): Promise<Written>;
  /** Empties a table (a TRUNCATE at the source, or before a whole copy). */
  truncate(t: ReceiverTable): Promise<void>;
  /** Writes a whole copy into the emptied table, batch by batch; returns the rows written. */
  fullCopy(t: ReceiverTable, batches: AsyncIterable<Row[]>, onBatch?: (rows: number) => void): Promise<number>;
  /** Whether the table holds no row. */
  isEmpty(t: ReceiverTable): Promise<boolean>;
  /** Whether `sync` delivered here before (its one-time copy is done): a fence exists. */
  delivered(sync: string): Promise<boolean>;
  /**
   * Records `generation` as the newest run of `sync` that wrote here, in the open transaction,
   * or throws RUN_FAILED (transient) when a newer run already did (see apply/fence.ts).
   */
  fence(sync: string, generation: Generation): Promise<void>;
  commit(): Promise<void>;
  /** Rolls back the open transaction, if any; never throws. */
  rollback(): Promise<void>;
  /** Closes connections (after rollback()); the receiver can begin() again later. */
  close(): Promise<void>;
}

/** Opens receivers of one kind for a database. */
export interface ReceiverFactory {
  readonly kind: ReceiverKind;
  /** Where it is, for messages (no password). */
  readonly where: string;
  /** A receiver for runs of `sync`, on a connection of its own (a run opens one and keeps it to its end). */
  open(sync: string): Promise<Receiver>;
  /** Checks that the database answers (CONNECTION_FAILED). */
  ping(): Promise<void>;
  /** Ends what the factory holds (pools). */
  close(): Promise<void>;
}
