/**
 * Application writers: `n` connections to one database, each doing `write` over and over
 * until stopped. Deadlocks, unique races and serialization failures between the writers are
 * the application's business and are ignored; any other error fails `stop()`.
 */
import pg from 'pg';

export interface Writers {
  /** Writes done so far. */
  readonly ops: number;
  /** Stops the writers, waits for them, and returns the number of writes; throws the first failure. */
  stop(): Promise<number>;
}

const TOLERATED = new Set(['40P01', '23505', '40001']);

export function startWriters(url: string, n: number, write: (c: pg.Client) => Promise<void>): Writers {
  let stopping = false;
  let ops = 0;
  const failures: unknown[] = [];
  const loops = Array.from({ length: n }, async () => {
    const c = new pg.Client({ connectionString: url });
    c.on('error', () => {});
    await c.connect();
    try {
      while (!stopping) {
        try {
          await write(c);
          ops++;
        } catch (err) {
          if (!TOLERATED.has((err as { code?: string }).code ?? '')) failures.push(err);
        }
      }
    } finally {
      await c.end().catch(() => {});
    }
  });
  return {
    get ops() {
      return ops;
    },
    async stop(): Promise<number> {
      stopping = true;
      await Promise.all(loops);
      if (failures.length > 0) throw new Error(`writers failed: ${String(failures[0])}`);
      return ops;
    },
  };
}

/**
 * Runs `body` while `writers` write, then stops them and fails on their failures. When `body`
 * fails, the writers are stopped too and `body`'s error is the one thrown.
 */
export async function whileWriting<T>(writers: Writers, body: () => Promise<T>): Promise<T> {
  let result: T;
  try {
    result = await body();
  } catch (err) {
    await writers.stop().catch(() => {});
    throw err;
  }
  await writers.stop();
  return result;
}

/**
 * A transaction on `c`: BEGIN, `body`, COMMIT; on an error, ROLLBACK and re-throw.
 */
export async function inTransaction(c: pg.Client, body: () => Promise<void>): Promise<void> {
  await c.query('BEGIN');
  try {
    await body();
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {});
    throw err;
  }
}
