/**
 * Autokick: a dedicated connection per source database LISTENs on the library schema's
 * channel; the capture triggers notify it at commit with the changed table's name. A lost
 * connection is reopened with backoff (and the syncs are poked then, since notifications
 * may have been missed meanwhile).
 *
 * While every sync it serves has a run booked, notifications tell nothing new, yet each
 * notifying commit signals the listening backend, which wakes and sends it on: under TPC-B
 * that cost the writers a fifth of their throughput (see BENCHMARKS.md). So the listener
 * goes quiet then (UNLISTEN), and listens again before a booked run takes its snapshot
 * (listening()): a commit in between is in that snapshot, a later one notifies. PostgreSQL
 * starts a new listener's queue position behind every notification not yet committed, so
 * none falls between the two.
 */
import createDebug from 'debug';
import pg from 'pg';
import type { Database } from '../db/database.js';
import { destroyConnection } from '../db/session.js';
import { ident } from '../sql/ident.js';

const debug = createDebug('pgferry:listen');

/**
 * How long a run waits for LISTEN to be in effect. A reply that takes longer means a stuck
 * connection (a quiet one carries nothing for a while, which idle timeouts on the way may
 * cut): it is dropped and opened again, which listens and pokes the syncs.
 */
const TOGGLE_TIMEOUT_MS = 2_000;

/** Keepalive probes on a quiet connection well before idle cuts on the way (NAT, load balancers: minutes). */
const KEEPALIVE_DELAY_MS = 30_000;

/** Rejects when `p` has not settled within `ms`. */
function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} got no reply in ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** Closes `client`; a connection that does not close in time (cut on the way) is destroyed. */
async function close(client: pg.Client): Promise<void> {
  await bounded(client.end(), 1_000, 'closing').catch(() => undefined);
  destroyConnection(client);
}

export class NotificationListener {
  readonly #db: Database;
  readonly #channel: string;
  readonly #onNotify: (table: string | null) => void;
  #client: pg.Client | null = null;
  /** Clients given up on: their late events change nothing. */
  readonly #dropped = new WeakSet<pg.Client>();
  #stopped = false;
  #timer: NodeJS.Timeout | null = null;
  #failures = 0;
  /** LISTEN in effect (or on its way); false after quiet(). */
  #listening = true;
  /** The last LISTEN or UNLISTEN sent; they run in order on the connection. */
  #toggled: Promise<void> = Promise.resolve();

  constructor(db: Database, channel: string, onNotify: (table: string | null) => void) {
    this.#db = db;
    this.#channel = channel;
    this.#onNotify = onNotify;
  }

  async start(): Promise<void> {
    this.#stopped = false;
    await this.#connect().catch((err) => {
      debug('%s: listen failed: %s', this.#db.name, this.#db.redact(String((err as Error).message)));
      this.#reconnectLater();
    });
  }

  async #connect(): Promise<void> {
    // A client of its own (not from the pool): LISTEN lives as long as the connection, which
    // keepalives keep from being cut silently while it is quiet (unless the config says
    // otherwise). Connecting and LISTEN are bounded: a reconnect that hangs would leave the
    // syncs without autokick.
    const config = this.#db.clientConfig();
    const client = new pg.Client({
      ...config,
      keepAlive: config.keepAlive ?? true,
      keepAliveInitialDelayMillis: config.keepAliveInitialDelayMillis ?? KEEPALIVE_DELAY_MS,
      connectionTimeoutMillis: config.connectionTimeoutMillis ?? 10_000,
    });
    const lost = (): void => {
      if (this.#dropped.has(client) || (this.#client !== null && this.#client !== client)) return;
      this.#drop(client);
      this.#reconnectLater();
    };
    client.on('error', (err) => {
      debug('%s: listener connection lost: %s', this.#db.name, this.#db.redact(err.message));
      lost();
    });
    client.on('end', () => {
      if (this.#client === client) lost();
    });
    client.on('notification', (n) => this.#onNotify(n.payload ?? null));
    try {
      await client.connect();
      if (!this.#stopped) await bounded(client.query(`LISTEN ${ident(this.#channel)}`), TOGGLE_TIMEOUT_MS, 'LISTEN');
    } catch (err) {
      this.#dropped.add(client);
      void close(client);
      throw err;
    }
    // stop() may have come meanwhile.
    if (this.#stopped) {
      this.#dropped.add(client);
      await close(client);
      return;
    }
    this.#client = client;
    this.#listening = true;
    this.#toggled = Promise.resolve();
    const wasDown = this.#failures > 0;
    this.#failures = 0;
    debug('%s: listening on %s', this.#db.name, this.#channel);
    if (wasDown) this.#onNotify(null); // notifications may have been missed while down
  }

  /** Stops notifications until listening() (a run is booked for every sync served here). */
  quiet(): void {
    if (!this.#listening || !this.#client) return;
    this.#listening = false;
    this.#toggle(this.#client, 'UNLISTEN');
  }

  /**
   * Listens again, if quiet; resolves once LISTEN is in effect, or at once when the
   * connection is down, or after TOGGLE_TIMEOUT_MS (in both cases reconnecting listens and
   * pokes the syncs, so a commit after the run's snapshot gets a run of its own).
   */
  listening(): Promise<void> {
    if (!this.#listening && this.#client) {
      this.#listening = true;
      this.#toggle(this.#client, 'LISTEN');
    }
    return this.#toggled;
  }

  #toggle(client: pg.Client, command: 'LISTEN' | 'UNLISTEN'): void {
    // Failed or stuck: the connection is opened again, which listens and pokes the syncs.
    this.#toggled = bounded(client.query(`${command} ${ident(this.#channel)}`), TOGGLE_TIMEOUT_MS, command).then(
      () => undefined,
      (err: Error) => {
        debug('%s: %s; reconnecting', this.#db.name, this.#db.redact(err.message));
        if (this.#client === client) {
          this.#drop(client);
          this.#reconnectLater();
        }
      },
    );
  }

  #drop(client: pg.Client): void {
    if (this.#client === client) this.#client = null;
    this.#dropped.add(client);
    client.removeAllListeners('notification');
    void close(client);
  }

  #reconnectLater(): void {
    if (this.#stopped || this.#timer) return;
    this.#failures++;
    const delay = Math.min(30_000, 100 * 2 ** Math.min(this.#failures, 10)) * (0.5 + Math.random() / 2);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (this.#stopped) return;
      this.#connect().catch(() => this.#reconnectLater());
    }, delay);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const c = this.#client;
    this.#client = null;
    if (c) {
      this.#dropped.add(c);
      c.removeAllListeners('end');
      await close(c);
    }
  }
}
