import type { ConflictRecord, RunResult } from '../types.js';

/** A finished run, as kept by a control store. */
export interface RunRecord {
  sync: string;
  runId: string;
  reason: RunResult['reason'];
  status: 'ok' | 'empty' | 'error';
  startedAt: Date;
  durationMs: number;
  rows: number;
  /** The replicator instance that ran it (its `name`). */
  instance?: string;
  error?: { code: string; message: string };
}

/**
 * Where pgferry keeps run history and coordinates replicator processes. Watermarks do not
 * live here: they are kept in each source database next to the deltas they describe, so they
 * commit with the data and survive a crash of the process whatever store is used.
 */
export interface ControlStore {
  /** Called once by `install()`/`start()`; creates what the store needs. */
  init?(): Promise<void>;
  recordRun(run: RunRecord): Promise<void>;
  /** Latest runs first. */
  runs(sync?: string, limit?: number): Promise<RunRecord[]>;
  /** Keeps settled conflicts with their rows (bounded); a store without it keeps none. */
  recordConflicts?(records: ConflictRecord[]): Promise<void>;
  /** Latest conflicts of a sync first. */
  conflicts?(sync: string, limit: number): Promise<ConflictRecord[]>;
  close?(): Promise<void>;
}

export interface MemoryControlStoreOptions {
  /** Runs kept (older ones are dropped); default 1000. */
  keepRuns?: number;
  /** Conflicts kept (older ones are dropped); default 1000. */
  keepConflicts?: number;
}

/** Keeps the last runs and conflicts in memory. The default store. */
export class MemoryControlStore implements ControlStore {
  readonly #runs: RunRecord[] = [];
  readonly #conflicts: ConflictRecord[] = [];
  readonly #limit: number;
  readonly #keepConflicts: number;

  constructor(opts: MemoryControlStoreOptions = {}) {
    this.#limit = opts.keepRuns ?? 1000;
    this.#keepConflicts = opts.keepConflicts ?? 1000;
  }

  async recordRun(run: RunRecord): Promise<void> {
    this.#runs.push(run);
    if (this.#runs.length > this.#limit) this.#runs.splice(0, this.#runs.length - this.#limit);
  }

  async runs(sync?: string, limit = 100): Promise<RunRecord[]> {
    return this.#runs.filter((r) => sync === undefined || r.sync === sync).slice(-limit).reverse();
  }

  async recordConflicts(records: ConflictRecord[]): Promise<void> {
    this.#conflicts.push(...records);
    if (this.#conflicts.length > this.#keepConflicts) this.#conflicts.splice(0, this.#conflicts.length - this.#keepConflicts);
  }

  async conflicts(sync: string, limit: number): Promise<ConflictRecord[]> {
    return this.#conflicts.filter((c) => c.sync === sync).slice(-limit).reverse();
  }
}
