/**
 * The control store the command uses, with errors that say where they come from: a
 * PostgresControlStore fails with pg's own errors (`connect ECONNREFUSED …`), which become
 * CONNECTION_FAILED or RUN_FAILED naming the control store here.
 */
import { isPgferryError, PgferryError, type ConflictRecord, type ControlStore, type RunRecord } from '../index.js';

const CONNECTION = /^(ECONNREFUSED|ECONNRESET|ENOTFOUND|ETIMEDOUT|EHOSTUNREACH|EPIPE|08|28|57P0|53300)/;

function storeError(err: unknown): unknown {
  if (isPgferryError(err) || !(err instanceof Error)) return err;
  const code = String((err as { code?: unknown }).code ?? '');
  const message = err.message; // the command's output is redacted as it is written
  return CONNECTION.test(code) || /Connection terminated|timeout exceeded when trying to connect/i.test(err.message)
    ? new PgferryError('CONNECTION_FAILED', `Cannot reach the control store: ${message}. Check store in the config, and that its server is running.`, { transient: true })
    : new PgferryError('RUN_FAILED', `The control store failed: ${message}.`);
}

/** `store` with every error of its own turned into a PgferryError that names it. */
export function namedStore(store: ControlStore): ControlStore {
  const wrap = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      throw storeError(err);
    }
  };
  return {
    ...(store.init && { init: () => wrap(() => store.init!()) }),
    recordRun: (run: RunRecord) => wrap(() => store.recordRun(run)),
    runs: (sync?: string, limit?: number) => wrap(() => store.runs(sync, limit)),
    ...(store.recordConflicts && { recordConflicts: (records: ConflictRecord[]) => wrap(() => store.recordConflicts!(records)) }),
    ...(store.conflicts && { conflicts: (sync: string, limit: number) => wrap(() => store.conflicts!(sync, limit)) }),
    ...(store.close && { close: () => wrap(() => store.close!()) }),
  };
}
