/** Options and reports of the face's methods (re-exported by replicator.ts). */
import type { PgferryError } from './errors.js';
import type { Role, RunResult } from './types.js';

export interface KickOptions {
  /** Reject with KICK_TIMEOUT after this many ms (the run goes on). */
  timeoutMs?: number;
  /**
   * Copy whole tables to the targets in this run, as the sync's first run does: every table
   * (`'always'`) or the empty ones (`'ifEmpty'`), whatever was copied before.
   */
  onetimecopy?: 'always' | 'ifEmpty';
}

export interface StopOptions {
  /** How long to let runs in flight finish before giving up on them (default 30 s). */
  timeoutMs?: number;
}

export interface SyncStatus {
  name: string;
  running: boolean;
  /**
   * The instance running the sync here, or holding its background work (this one or another,
   * as last seen), or null.
   */
  owner: string | null;
  autokick: boolean;
  databases: Record<string, Role>;
  lastResult: RunResult | null;
  lastError: PgferryError | null;
}

export interface ReplicatorStatus {
  /** This instance's name. */
  name: string;
  started: boolean;
  databases: string[];
  syncs: SyncStatus[];
}
