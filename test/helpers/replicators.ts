/**
 * Replicators in tests: replicators stopped after each test, sync `s` declared over test
 * databases in one call, and a kick whose failure says why.
 *
 * Databases are named in the sync by the order they are passed in: the first one gets the
 * first name of `databases`, and so on (by default `a` is the source and `b`, `c`, … targets).
 */
import { afterEach } from 'vitest';
import { Replicator, type ReplicatorOptions, type RunResult, type SyncConfig } from '../../src/index.js';
import type { TestDb } from './db.js';
import { describeError } from './errors.js';
import { within } from './wait.js';

/** A database as the helpers here need it: a test database, or any connection string as `{ url }`. */
type Db = Pick<TestDb, 'url'>;

export type Roles = Record<string, 'source' | 'target' | 'fullcopy'>;

/** Sync `s` as a test declares it: `databases` may be left out (`a` source, the rest targets). */
export type TestSync = Omit<SyncConfig, 'databases'> & { databases?: Roles };

/** `{ a: 'source', b: 'target', c: 'target', … }` for `count` databases. */
export function sourceThenTargets(count: number): Roles {
  const roles: Roles = {};
  for (let i = 0; i < count; i++) roles[String.fromCharCode('a'.charCodeAt(0) + i)] = i === 0 ? 'source' : 'target';
  return roles;
}

/** Adds `dbs[i]` to `rep` as `names[i]`. */
export async function addDatabases(rep: Replicator, dbs: readonly Db[], names: readonly string[]): Promise<Replicator> {
  for (let i = 0; i < names.length; i++) await rep.addDatabase(names[i]!, dbs[i]!.url);
  return rep;
}

/**
 * Adds `dbs` under the names of `sync.databases` and declares sync `s` on `rep`, with autokick
 * off unless `sync` turns it on. Installs nothing.
 */
export async function declareSync(rep: Replicator, dbs: readonly Db[], sync: TestSync): Promise<Replicator> {
  const databases = sync.databases ?? sourceThenTargets(dbs.length);
  await addDatabases(rep, dbs, Object.keys(databases));
  await rep.addSync('s', { autokick: false, ...sync, databases });
  return rep;
}

/** Kicks sync `name`; a failure is re-thrown with its code and message in the message. */
export async function kick(rep: Replicator, name = 's'): Promise<RunResult> {
  try {
    return await rep.kick(name);
  } catch (err) {
    throw new Error(`kick('${name}') failed: ${describeError(err, { stack: true })}`, { cause: err });
  }
}

export interface Replicators {
  /** A new replicator, stopped after the test. */
  create(options?: ReplicatorOptions): Replicator;
  /** Stops `rep` after the test too. */
  add<R extends Replicator>(rep: R): R;
  /** A new replicator (stopped after the test) with sync `s` over `dbs` (see `declareSync`), installed. */
  installed(dbs: readonly Db[], sync: TestSync, options?: ReplicatorOptions): Promise<Replicator>;
}

/**
 * Call once at the top of a test file. The replicators it makes are stopped after each test,
 * before the test's databases are dropped (afterEach runs before onTestFinished). Each stop is
 * bounded, so a run that never ends cannot hold the whole file hostage: runs in flight get
 * `stopTimeoutMs` before they are aborted, and the stop itself at most `boundMs`.
 */
export function stopReplicatorsAfterEach(options: { stopTimeoutMs?: number; boundMs?: number } = {}): Replicators {
  const { stopTimeoutMs = 3_000, boundMs = 10_000 } = options;
  const reps: Replicator[] = [];
  afterEach(async () => {
    for (const rep of reps.splice(0)) await within(rep.stop({ timeoutMs: stopTimeoutMs }), boundMs);
  });
  const add = <R extends Replicator>(rep: R): R => {
    reps.push(rep);
    return rep;
  };
  const create = (opts?: ReplicatorOptions) => add(new Replicator(opts));
  return {
    create,
    add,
    async installed(dbs, sync, opts) {
      const rep = await declareSync(create(opts), dbs, sync);
      await rep.install();
      return rep;
    },
  };
}
