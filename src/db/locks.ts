/**
 * Advisory lock keys. Two 32-bit halves: the kind of lock (`hashtext` of a constant) and what
 * it is about (`hashtext` of the library schema and the sync's name), so that syncs sharing a
 * database never wait for each other and nothing of pgferry collides with an application's
 * single-key advisory locks. The texts travel as parameters: the keys do not depend on a
 * session's settings (some lock calls run outside pgferry's transactions).
 */

export interface LockKey {
  kind: string;
  subject: string;
}

function key(kind: string, schema: string, sync: string): LockKey {
  return { kind, subject: `${schema}.${sync}` };
}

/** SQL for the two int4 arguments of pg_advisory_lock and friends, from parameters `$n` and `$n+1`. */
export function lockArgs(n: number): string {
  return `pg_catalog.hashtext($${n}::pg_catalog.text), pg_catalog.hashtext($${n + 1}::pg_catalog.text)`;
}

/** SQL that matches a row of pg_locks (alias `l`) for the lock of parameters `$n`, `$n+1`. */
export function lockInPgLocks(n: number): string {
  return `l.locktype OPERATOR(pg_catalog.=) 'advisory' AND l.objsubid OPERATOR(pg_catalog.=) 2
      AND l.classid OPERATOR(pg_catalog.=) pg_catalog.hashtext($${n}::pg_catalog.text)::pg_catalog.oid AND l.objid OPERATOR(pg_catalog.=) pg_catalog.hashtext($${n + 1}::pg_catalog.text)::pg_catalog.oid`;
}

/**
 * The two int4 arguments for `key` as SQL without parameters, for a statement sent with
 * others in one round trip: the texts travel as hex, so no setting changes how they read.
 */
export function lockArgsInline(key: LockKey): string {
  const text = (s: string) => `pg_catalog.hashtext(pg_catalog.convert_from(pg_catalog.decode('${Buffer.from(s, 'utf8').toString('hex')}', 'hex'), 'UTF8'))`;
  return `${text(key.kind)}, ${text(key.subject)}`;
}

export function lockValues(key: LockKey): string[] {
  return [key.kind, key.subject];
}

/** Held by a run of a sync on every source, from before its snapshot to after its last commit. */
export function runLock(schema: string, sync: string): LockKey {
  return key('pgferry.run', schema, sync);
}

/** Held by the instance that does a sync's background work, on the sync's home database. */
export function holdLock(schema: string, sync: string): LockKey {
  return key('pgferry.hold', schema, sync);
}
