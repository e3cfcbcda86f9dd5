/**
 * Which instance does a sync's background work. Every started replicator tries to hold each
 * of its syncs: a session advisory lock on the sync's home database (its first source by
 * name), on a dedicated connection named after the instance. The one that holds a sync runs
 * it on notifications, checks and retries; the others stand by and try again every
 * HOLD_POLL_MS, so when the holder stops or dies (its connection goes, and the lock with it)
 * another takes the sync over within a few seconds.
 */
import createDebug from 'debug';
import pg from 'pg';
import type { Database } from '../db/database.js';
import { holdLock, lockArgs, lockInPgLocks, lockValues } from '../db/locks.js';
import { pinSql } from '../db/settings.js';
import { namesWithRole, type SyncPlan } from '../plan.js';

const debug = createDebug('pgferry:hold');

/** How often a standby instance tries to take over the syncs it does not hold. */
export const HOLD_POLL_MS = 2_000;
/** application_name of the holding connections: the prefix, then the instance's name. */
const APP_PREFIX = 'pgferry:';

export interface HolderEvents {
  /** This instance now holds the sync (`true`) or no longer does (`false`). */
  changed(sync: string, held: boolean): void;
}

interface Home {
  db: Database;
  client: pg.Client | null;
  connecting: Promise<pg.Client> | null;
}

export class Holder {
  readonly #dbs: ReadonlyMap<string, Database>;
  readonly #schema: string;
  readonly #name: string;
  readonly #plans: () => Iterable<SyncPlan>;
  readonly #events: HolderEvents;
  readonly #homes = new Map<string, Home>();
  readonly #held = new Set<string>();
  /** The instance seen holding each sync we do not hold (from the last try). */
  readonly #others = new Map<string, string>();
  #timer: NodeJS.Timeout | null = null;
  #polling: Promise<void> | null = null;
  #started = false;

  constructor(dbs: ReadonlyMap<string, Database>, schema: string, name: string, plans: () => Iterable<SyncPlan>, events: HolderEvents) {
    this.#dbs = dbs;
    this.#schema = schema;
    this.#name = name;
    this.#plans = plans;
    this.#events = events;
  }

  /** Tries to hold every sync now, then keeps trying for those held elsewhere. */
  async start(): Promise<void> {
    this.#started = true;
    await this.poll();
    const tick = () => {
      this.#timer = setTimeout(() => {
        void this.poll().finally(() => {
          if (this.#started) tick();
        });
      }, HOLD_POLL_MS * (0.75 + Math.random() / 2));
      this.#timer.unref();
    };
    tick();
  }

  holds(sync: string): boolean {
    return this.#held.has(sync);
  }

  /** The name of the instance holding the sync as last seen, or null. */
  owner(sync: string): string | null {
    return this.#held.has(sync) ? this.#name : (this.#others.get(sync) ?? null);
  }

  /** One round of tries for every sync not held here (joins a round in progress). */
  poll(): Promise<void> {
    this.#polling ??= this.#tryAll().finally(() => (this.#polling = null));
    return this.#polling;
  }

  async #tryAll(): Promise<void> {
    for (const plan of this.#plans()) {
      if (!this.#started || this.#held.has(plan.name)) continue;
      const home = [...namesWithRole(plan, 'source')].sort()[0]!;
      try {
        const client = await this.#connect(home);
        const lock = holdLock(this.#schema, plan.name);
        const r = await client.query<{ got: boolean; holder: string | null }>(
          `SELECT pg_catalog.pg_try_advisory_lock(${lockArgs(1)}) AS got,
                  (SELECT a.application_name FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
                    WHERE ${lockInPgLocks(1)} AND l.granted AND l.pid <> pg_catalog.pg_backend_pid()
                      AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
                    LIMIT 1) AS holder`,
          lockValues(lock),
        );
        const { got, holder } = r.rows[0]!;
        if (!this.#started) {
          if (got) await client.query(`SELECT pg_catalog.pg_advisory_unlock(${lockArgs(1)})`, lockValues(lock));
          continue;
        }
        if (got) {
          this.#held.add(plan.name);
          this.#others.delete(plan.name);
          debug('%s holds %s', this.#name, plan.name);
          this.#events.changed(plan.name, true);
        } else if (holder?.startsWith(APP_PREFIX)) {
          this.#others.set(plan.name, holder.slice(APP_PREFIX.length));
        }
      } catch (err) {
        debug('%s: cannot try to hold %s: %s', home, plan.name, this.#dbs.get(home)!.redact(String((err as Error)?.message)));
      }
    }
  }

  async #connect(name: string): Promise<pg.Client> {
    let home = this.#homes.get(name);
    if (!home) this.#homes.set(name, (home = { db: this.#dbs.get(name)!, client: null, connecting: null }));
    if (home.client) return home.client;
    home.connecting ??= this.#open(home).finally(() => (home.connecting = null));
    return home.connecting;
  }

  async #open(home: Home): Promise<pg.Client> {
    const client = new pg.Client({ ...home.db.clientConfig(), application_name: APP_PREFIX + this.#name });
    const lost = () => {
      if (home.client !== client) return;
      home.client = null;
      client.end().catch(() => undefined);
      this.#lose(home.db.name);
    };
    client.on('error', (err) => {
      debug('%s: holding connection lost: %s', home.db.name, home.db.redact(err.message));
      lost();
    });
    client.on('end', lost);
    try {
      await client.connect();
      await client.query(pinSql('session'));
    } catch (err) {
      client.removeAllListeners('end');
      await client.end().catch(() => undefined);
      throw err;
    }
    home.client = client;
    return client;
  }

  /** The connection to a home database went: every sync held there is held no more. */
  #lose(home: string): void {
    for (const plan of this.#plans()) {
      const first = [...namesWithRole(plan, 'source')].sort()[0];
      if (first === home && this.#held.delete(plan.name)) {
        debug('%s lost %s', this.#name, plan.name);
        this.#events.changed(plan.name, false);
      }
    }
  }

  /** Lets go of every sync (ending the connections releases the locks). */
  async stop(): Promise<void> {
    this.#started = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#polling?.catch(() => undefined);
    const clients = [...this.#homes.values()].map((h) => h.client).filter((c): c is pg.Client => c !== null);
    for (const h of this.#homes.values()) h.client = null;
    this.#homes.clear();
    const held = [...this.#held];
    this.#held.clear();
    this.#others.clear();
    await Promise.all(clients.map((c) => { c.removeAllListeners('end'); return c.end().catch(() => undefined); }));
    for (const sync of held) this.#events.changed(sync, false);
  }
}
