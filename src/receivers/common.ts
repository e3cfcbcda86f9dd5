/**
 * What the receivers of other kinds share: loading their driver only when a database of that
 * kind is added, the errors they throw, and the fence they keep (apply/fence.ts, in a table
 * or hash of their own).
 */
import type { Generation } from '../apply/fence.js';
import { PgferryError, redact } from '../errors.js';
import type { Row } from '../types.js';
import type { Receiver, ReceiverColumn, ReceiverKind, ReceiverTable } from './receiver.js';

const PACKAGES: Record<Exclude<ReceiverKind, 'postgres'>, string> = {
  sqlite: 'better-sqlite3@12',
  mysql: 'mysql2',
  redis: 'ioredis',
};

/**
 * The driver module of a kind, loaded on first use. A missing package is CONFIG_INVALID
 * naming the package to install (the drivers are optional peer dependencies).
 */
export async function loadDriver<T>(kind: Exclude<ReceiverKind, 'postgres'>, database: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') throw err;
    const pkg = PACKAGES[kind];
    throw new PgferryError('CONFIG_INVALID', `Invalid database "${database}": ${database}.type: ${kind} needs the package ${pkg.replace(/@\d+$/, '')}; run \`npm install ${pkg}\` in your project.`, {
      database,
      issues: [{ path: `${database}.type`, message: `needs the package ${pkg.replace(/@\d+$/, '')} (npm install ${pkg})` }],
      cause: err,
    });
  }
}

/** The default export of a CommonJS module loaded by import(), or the module. */
export function defaultOf<T>(mod: unknown): T {
  return ((mod as { default?: T }).default ?? mod) as T;
}

/** A URI with its password replaced by `***`, and the password (to scrub from messages). */
export function redactUri(uri: string): { where: string; secrets: string[] } {
  try {
    const u = new URL(uri);
    const secrets = u.password ? [u.password, decodeURIComponent(u.password)] : [];
    if (u.password) u.password = '***';
    return { where: u.toString(), secrets };
  } catch {
    return { where: uri.replace(/(\/\/[^:/@\s]*:)[^@\s]*@/, '$1***@'), secrets: [] };
  }
}

/** A message of a driver, with passwords removed. */
export function scrub(message: string, secrets: readonly string[]): string {
  return redact(message, secrets).replace(/((?:mysql|rediss?):\/\/[^:/@\s]*:)[^@\s]*@/gi, '$1***@');
}

/**
 * An error a receiver's driver threw while writing `t`: CONSTRAINT_VIOLATION when the
 * database refused a row by a constraint (`constraint` named when the message names one),
 * CONNECTION_FAILED when it could not be reached (transient unless `transient: false`, as for
 * a wrong password), else RUN_FAILED (transient with `transient: true`: deadlocks, busy
 * databases). `partial`: the transaction could not be undone (Redis EXEC ran its other
 * commands), so the message does not say that nothing was applied.
 */
export function writeError(
  kind: ReceiverKind,
  database: string,
  t: ReceiverTable | undefined,
  err: unknown,
  secrets: readonly string[],
  how: { constraint?: boolean; connection?: boolean; transient?: boolean; partial?: boolean; name?: string },
): PgferryError {
  if (err instanceof PgferryError) return err;
  const message = scrub((err as Error)?.message ?? String(err), secrets);
  const where = t ? ` table ${t.display} (${t.name})` : '';
  const cause = new Error(message);
  if (how.connection) {
    const transient = how.transient ?? true;
    return new PgferryError(
      'CONNECTION_FAILED',
      `Cannot reach ${kind} database "${database}": ${message}. ${transient ? 'Check that the server is running and reachable.' : 'Check the user, password and database in its configuration; retrying does not help.'}`,
      { database, transient, cause },
    );
  }
  if (how.partial) {
    return new PgferryError(
      'RUN_FAILED',
      `Writing${where} on ${kind} database "${database}" failed: ${message}. The write may be partial: ${kind} applied the transaction's other commands. The watermark stays, so the next run writes the chunk again.`,
      { database, ...(t && { table: t.display }), cause },
    );
  }
  if (how.constraint) {
    return new PgferryError(
      'CONSTRAINT_VIOLATION',
      `Writing${where} on ${kind} database "${database}" broke ${how.name ? `constraint "${how.name}"` : 'a constraint'}: ${message}. Nothing of the run was applied; fix the receiving table and run again (pending changes are kept).`,
      { database, ...(t && { table: t.display }), ...(how.name && { constraint: how.name }), cause },
    );
  }
  return new PgferryError('RUN_FAILED', `Writing${where} on ${kind} database "${database}" failed: ${message}. Nothing of the run was applied.`, {
    database,
    ...(t && { table: t.display }),
    ...(how.transient && { transient: true }),
    cause,
  });
}

export function tableMissing(kind: ReceiverKind, database: string, t: ReceiverTable, as: string): PgferryError {
  return new PgferryError('TABLE_NOT_FOUND', `Table ${t.display} has no ${kind} table "${as}" on database "${database}". Create it there with the same column names.`, {
    database,
    table: t.display,
  });
}

/** Checks a receiving table's columns and key against what travels. */
export function checkColumns(kind: ReceiverKind, database: string, t: ReceiverTable, as: string, columns: ReadonlySet<string>, key: readonly string[]): void {
  for (const c of t.columns) {
    if (!columns.has(c.name)) {
      throw new PgferryError('SCHEMA_MISMATCH', `The ${kind} table "${as}" on database "${database}" has no column "${c.name}" (table ${t.display} sends it). Add the column and run again; pending changes are kept.`, {
        database,
        table: t.display,
        column: c.name,
      });
    }
  }
  const want = [...t.key].sort().join('\0');
  if ([...key].sort().join('\0') !== want) {
    throw new PgferryError(
      'SCHEMA_MISMATCH',
      `The ${kind} table "${as}" on database "${database}" has key (${key.join(', ') || 'none'}) but table ${t.display} has (${t.key.join(', ')}). Give it a primary key (or unique key) on the same columns.`,
      { database, table: t.display, column: t.key[0] },
    );
  }
}

/** A run older than the one that last wrote: it must not write. */
export function staleRun(sync: string, database: string, generation: Generation): PgferryError {
  return new PgferryError(
    'RUN_FAILED',
    `Sync "${sync}": a newer run already wrote to database "${database}", so this run (generation ${generation.value}) rolled back instead of writing older rows over newer ones. It lost its lock (a connection to a source was cut); nothing of it was applied.`,
    { sync, database, transient: true },
  );
}

/** Whether `generation` may write over what `recorded` wrote (same rule as apply/fence.ts). */
export function mayPass(recorded: { generation: string; origin: string } | undefined, generation: Generation): boolean {
  return !recorded || recorded.origin !== generation.origin || BigInt(recorded.generation) <= generation.value;
}

export function columnOf(t: ReceiverTable, name: string): ReceiverColumn {
  return t.columns.find((c) => c.name === name)!;
}

/** Rows a statement of many rows carries at most (and fewer when they have many columns). */
export function batchRows(columns: number, maxParams = 60_000, maxRows = 1000): number {
  return Math.max(1, Math.min(maxRows, Math.floor(maxParams / Math.max(1, columns))));
}

/** A whole copy written as upserts into the emptied table, a batch at a time (Receiver.fullCopy). */
export async function copyAsUpserts(r: Pick<Receiver, 'apply'>, t: ReceiverTable, batches: AsyncIterable<Row[]>, onBatch?: (rows: number) => void): Promise<number> {
  let n = 0;
  for await (const rows of batches) {
    n += (await r.apply(t, { upserts: rows, deletes: [] })).upserted;
    onBatch?.(n);
  }
  return n;
}
