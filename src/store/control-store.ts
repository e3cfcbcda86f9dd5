import type { RunResult } from '../types.js';

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
  close?(): Promise<void>;
}

/** Keeps the last runs in memory. The default store. */
export class MemoryControlStore implements ControlStore {
  readonly #runs: RunRecord[] = [];
  readonly #limit: number;

  constructor(opts: { keepRuns?: number } = {}) {
    this.#limit = opts.keepRuns ?? 1000;
  }

  async recordRun(run: RunRecord): Promise<void> {
    this.#runs.push(run);
    if (this.#runs.length > this.#limit) this.#runs.splice(0, this.#runs.length - this.#limit);
  }

  async runs(sync?: string, limit = 100): Promise<RunRecord[]> {
    return this.#runs.filter((r) => sync === undefined || r.sync === sync).slice(-limit).reverse();
  }
}
