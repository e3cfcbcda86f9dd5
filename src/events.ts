import type { PgferryError } from './errors.js';
import type { RowKey, RunReason, RunResult } from './types.js';

export interface SyncStartEvent {
  sync: string;
  runId: string;
  reason: RunReason;
}

export interface SyncErrorEvent {
  sync: string;
  runId: string;
  error: PgferryError;
  /** True when the scheduler will run the sync again by itself. */
  willRetry: boolean;
  /** Delay before that retry, when `willRetry`. */
  retryInMs?: number;
}

export interface ConflictEvent {
  sync: string;
  table: string;
  key: RowKey;
  resolution: 'winner' | 'merged' | 'skip';
  winner: string | null;
  /** The sources that changed the key. */
  databases: string[];
}

export interface RowsAppliedEvent {
  sync: string;
  /** The database that received the rows. */
  target: string;
  table: string;
  upserted: RowKey[];
  deleted: RowKey[];
}

export interface CopyProgressEvent {
  sync: string;
  table: string;
  target: string;
  rows: number;
  /** The planner's estimate of the table's rows on the source (may be off; -1 when unknown). */
  totalEstimate: number;
  done: boolean;
}

export interface ValidateProgressEvent {
  sync: string;
  table: string;
  /** Rows of the table (on the first database) whose key ranges are settled so far. */
  rows: number;
  /** The planner's estimate of the table's rows (may be off; -1 when unknown). */
  totalEstimate: number;
  done: boolean;
}

/** Every event of a Replicator: name → payload. */
export interface ReplicatorEvents {
  'sync:start': (e: SyncStartEvent) => void;
  'sync:complete': (e: RunResult) => void;
  'sync:error': (e: SyncErrorEvent) => void;
  conflict: (e: ConflictEvent) => void;
  'rows:applied': (e: RowsAppliedEvent) => void;
  'copy:progress': (e: CopyProgressEvent) => void;
  'validate:progress': (e: ValidateProgressEvent) => void;
  error: (e: PgferryError) => void;
}

/** What the parts below the Replicator use to report; listener errors never reach them. */
export interface Emit {
  <K extends keyof ReplicatorEvents>(name: K, payload: Parameters<ReplicatorEvents[K]>[0]): void;
  /** True when someone listens (so costly payloads can be skipped). */
  wants(name: keyof ReplicatorEvents): boolean;
}
