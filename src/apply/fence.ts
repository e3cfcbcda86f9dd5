/**
 * Fences: every transaction that writes a run's rows to a database also records the run's
 * generation there, and commits only when no newer run of the sync has written there before.
 * A run that lost its lock (its connection to a source was cut) and went on while a newer run
 * did the work therefore fails instead of writing older rows over newer ones. The row also
 * records that the sync has delivered to the database (its one-time copy is done).
 */
import { relationExists } from '../catalog/tables.js';
import type { Session } from '../db/session.js';
import { PgferryError } from '../errors.js';
import { ident } from '../sql/ident.js';

/** SQLSTATE undefined_table. */
const UNDEFINED_TABLE = '42P01';

function notInstalled(session: Session, schema: string, sync: string): PgferryError {
  return new PgferryError(
    'NOT_INSTALLED',
    `Sync "${sync}" is not installed on receiving database "${session.name}" (the pgferry schema "${schema}" with its fences is not there). Call install('${sync}') first.`,
    { sync, database: session.name },
  );
}

/** A run's place in the order of runs: its number, and what numbered it (server and database). */
export interface Generation {
  value: bigint;
  origin: string;
}

/**
 * Records `generation` as the newest run of `sync` that wrote on this session's database, in
 * its open transaction (the row stays locked until it ends), or throws when a newer run did.
 * A generation of another origin (the first source moved to another server) replaces the
 * recorded one.
 */
export async function passFence(session: Session, schema: string, sync: string, generation: Generation): Promise<void> {
  const s = ident(schema);
  let r;
  try {
    r = await session.query<{ generation: string }>(
      `INSERT INTO ${s}.fences AS f (sync, generation, origin) VALUES ($1, $2, $3)
       ON CONFLICT (sync) DO UPDATE SET generation = EXCLUDED.generation, origin = EXCLUDED.origin, updated_at = now()
        WHERE f.generation <= EXCLUDED.generation OR f.origin IS DISTINCT FROM EXCLUDED.origin
       RETURNING generation::text`,
      [sync, generation.value.toString(), generation.origin],
    );
  } catch (err) {
    if ((err as { code?: string }).code === UNDEFINED_TABLE) throw notInstalled(session, schema, sync);
    throw err;
  }
  if (r.rowCount === 0) {
    throw new PgferryError(
      'RUN_FAILED',
      `Sync "${sync}": a newer run already wrote to database "${session.name}", so this run (generation ${generation.value}) rolled back instead of writing older rows over newer ones. It lost its lock (a connection to a source was cut); nothing of it was applied.`,
      { sync, database: session.name, transient: true },
    );
  }
}

/**
 * The fence of a full copy: passed where the library schema is installed. A full copy needs no
 * install (it rewrites everything every run, so a stale copy is replaced by the next one).
 */
export async function passFenceIfInstalled(session: Session, schema: string, sync: string, generation: Generation): Promise<void> {
  if (await relationExists(session.client, { schema, name: 'fences' })) await passFence(session, schema, sync, generation);
}

/** Whether the sync has delivered to this database before (a fence row exists). */
export async function hasDelivered(session: Session, schema: string, sync: string): Promise<boolean> {
  try {
    const r = await session.query(`SELECT 1 FROM ${ident(schema)}.fences WHERE sync = $1`, [sync]);
    return (r.rowCount ?? 0) > 0;
  } catch (err) {
    if ((err as { code?: string }).code === UNDEFINED_TABLE) throw notInstalled(session, schema, sync);
    throw err;
  }
}
