/**
 * Autokick: a dedicated connection per source database LISTENs on the library schema's
 * channel; the capture triggers notify it at commit with the changed table's name. A lost
 * connection is reopened with backoff (and the syncs are poked then, since notifications
 * may have been missed meanwhile).
 */
import createDebug from 'debug';
import pg from 'pg';
import type { Database } from '../db/database.js';
import { ident } from '../sql/ident.js';

const debug = createDebug('pgferry:listen');

export class NotificationListener {
  readonly #db: Database;
  readonly #channel: string;
  readonly #onNotify: (table: string | null) => void;
  #client: pg.Client | null = null;
  #stopped = false;
  #timer: NodeJS.Timeout | null = null;
  #failures = 0;

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
    // A client of its own (not from the pool): LISTEN lives as long as the connection.
    const client = new pg.Client(this.#db.clientConfig());
    client.on('error', (err) => {
      debug('%s: listener connection lost: %s', this.#db.name, this.#db.redact(err.message));
      this.#drop(client);
      this.#reconnectLater();
    });
    client.on('end', () => {
      if (this.#client === client) {
        this.#drop(client);
        this.#reconnectLater();
      }
    });
    client.on('notification', (n) => this.#onNotify(n.payload ?? null));
    await client.connect();
    if (this.#stopped) {
      await client.end().catch(() => undefined);
      return;
    }
    await client.query(`LISTEN ${ident(this.#channel)}`);
    this.#client = client;
    const wasDown = this.#failures > 0;
    this.#failures = 0;
    debug('%s: listening on %s', this.#db.name, this.#channel);
    if (wasDown) this.#onNotify(null); // notifications may have been missed while down
  }

  #drop(client: pg.Client): void {
    if (this.#client === client) this.#client = null;
    client.removeAllListeners('notification');
    client.end().catch(() => undefined);
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
      c.removeAllListeners('end');
      await c.end().catch(() => undefined);
    }
  }
}
