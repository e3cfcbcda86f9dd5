/** What the examples share: one SQL statement on a connection of its own, and running main(). */
import pg from 'pg';

/** Runs `text` (several statements when `values` is not given) and returns its rows. */
export async function sql(url: string, text: string, values?: unknown[]): Promise<pg.QueryResultRow[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(text, values)).rows;
  } finally {
    await c.end();
  }
}

/** Runs an example's main(); a failure is printed and sets the exit code. */
export function runExample(main: () => Promise<void>): void {
  main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
