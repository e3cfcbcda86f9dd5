/**
 * Advisory lock keys. Two 32-bit halves: the kind of lock (`hashtext` of a constant) and what
 * it is about (`hashtext` of the library schema and the sync's name), so that syncs sharing a
 * database never wait for each other and nothing of pgferry collides with an application's
 * single-key advisory locks.
 */
import { literal } from '../sql/ident.js';

export interface LockKey {
  /** SQL for the two int4 arguments of pg_advisory_lock and friends. */
  sql: string;
  /** SQL that matches a row of pg_locks (alias `l`) for this lock. */
  inPgLocks: string;
  /** For messages and debugging. */
  label: string;
}

function key(kind: string, schema: string, sync: string): LockKey {
  const k1 = `hashtext(${literal(kind)})`;
  const k2 = `hashtext(${literal(`${schema}.${sync}`)})`;
  return {
    sql: `${k1}, ${k2}`,
    inPgLocks: `l.locktype = 'advisory' AND l.classid = ${k1}::oid AND l.objid = ${k2}::oid AND l.objsubid = 2`,
    label: `${kind} ${schema}.${sync}`,
  };
}

/** Held by a run of a sync on every source, from before its snapshot to after its last commit. */
export function runLock(schema: string, sync: string): LockKey {
  return key('pgferry.run', schema, sync);
}

/** Held by the instance that does a sync's background work, on the sync's home database. */
export function holdLock(schema: string, sync: string): LockKey {
  return key('pgferry.hold', schema, sync);
}
