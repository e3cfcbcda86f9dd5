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
import { ident, literal } from '../sql/ident.js';

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
  let r;
  try {
    r = await session.query<{ generation: string }>(`${fenceSql(schema, '$1', '$2', '$3')} RETURNING generation::text`, [
      sync,
      generation.value.toString(),
      generation.origin,
    ]);
  } catch (err) {
    if ((err as { code?: string }).code === UNDEFINED_TABLE) throw notInstalled(session, schema, sync);
    throw err;
  }
  if (r.rowCount === 0) throw newerRun(session, sync, generation);
}

/**
 * passFence() and commit in one round trip: the fence's statement fails when a newer run
 * wrote here (so COMMIT, sent after it, does not run and the transaction rolls back).
 */
export async function commitPastFence(session: Session, schema: string, sync: string, generation: Generation): Promise<void> {
  const fence = fenceSql(schema, literal(sync), literal(generation.value.toString()), literal(generation.origin));
  // No row returned: a newer generation is recorded. Casting text that names it to int is the
  // one way plain SQL fails on purpose; the count keeps the planner from folding it.
  try {
    await session.commit(
      `WITH f AS (${fence} RETURNING 1)
       SELECT CASE WHEN pg_catalog.count(*) OPERATOR(pg_catalog.=) 0 THEN pg_catalog.int4(pg_catalog.concat(${literal(NEWER_RUN)}, pg_catalog.count(*))) END FROM f`,
    );
  } catch (err) {
    const e = err as { code?: string; message?: string };
    if (e.code === UNDEFINED_TABLE) throw notInstalled(session, schema, sync);
    if (e.code === INVALID_TEXT && e.message?.includes(NEWER_RUN)) throw newerRun(session, sync, generation);
    throw err;
  }
}

/** SQLSTATE invalid_text_representation, and the text commitPastFence fails on. */
const INVALID_TEXT = '22P02';
const NEWER_RUN = 'pgferry fence: a newer run wrote here ';

/** The fence's INSERT for the three values (parameters or literals), without RETURNING. */
function fenceSql(schema: string, sync: string, generation: string, origin: string): string {
  return `INSERT INTO ${ident(schema)}.fences AS f (sync, generation, origin) VALUES (${sync}, ${generation}, ${origin})
       ON CONFLICT (sync) DO UPDATE SET generation = EXCLUDED.generation, origin = EXCLUDED.origin, updated_at = pg_catalog.now()
        WHERE f.generation OPERATOR(pg_catalog.<=) EXCLUDED.generation OR f.origin IS DISTINCT FROM EXCLUDED.origin`;
}

function newerRun(session: Session, sync: string, generation: Generation): PgferryError {
  return new PgferryError(
    'RUN_FAILED',
    `Sync "${sync}": a newer run already wrote to database "${session.name}", so this run (generation ${generation.value}) rolled back instead of writing older rows over newer ones. It lost its lock (a connection to a source was cut); nothing of it was applied.`,
    { sync, database: session.name, transient: true },
  );
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
